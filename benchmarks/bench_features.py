"""The full customer feature set as of one date: custintel on DuckDB vs plain pandas.

    python benchmarks/bench_features.py                        # 1,000,000 customers, ~20M orders
    python benchmarks/bench_features.py --customers 100000     # a quicker run

The data (benchmarks/features_data.py) is written straight into a DuckDB warehouse and to
Parquet, untimed. Then, each in a fresh process:

- **custintel**: `custintel features build --as-of DATE` (reads the warehouse, writes
  `features.customer`).
- **pandas** (the peer): the same definitions with merges and group-bys
  (benchmarks/pandas_features.py) on the Parquet files; its load and compute times are
  reported apart.

Wall time from the parent, peak memory as the child's maximum resident set size (the
data is written by another child, so no contender inherits its memory). Before
the times count, the two outputs are checked equal on a sample of customers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_identity import measure  # wall time and the child's own peak memory

OUT = Path(__file__).resolve().parent / "out" / "features"


def run_pandas(folder: Path, as_of: dt.date, sample: Path) -> None:
    """The pandas contender (in its own process)."""
    from features_data import CATEGORIES
    from pandas_features import features

    from custintel.features.definitions import Params

    began = time.perf_counter()
    tables = {p.stem: pd.read_parquet(p) for p in (folder / "parquet").glob("*.parquet")}
    loaded = time.perf_counter()
    out = features(tables, as_of, Params(categories=tuple(sorted(CATEGORIES))))
    done = time.perf_counter()
    ids = pd.read_parquet(sample).customer_id
    out[out.customer_id.isin(set(ids))].to_parquet(folder / "pandas_sample.parquet")
    print(
        json.dumps(
            {
                "load_s": round(loaded - began, 1),
                "compute_s": round(done - loaded, 1),
                "rows": len(out),
            }
        )
    )


def compare(mine: pd.DataFrame, theirs: pd.DataFrame) -> list[str]:
    """Columns whose values differ (numbers beyond 1e-6 relative)."""
    mine = mine.set_index("customer_id").sort_index()
    theirs = theirs.set_index("customer_id").sort_index().reindex(mine.index)
    bad = []
    for col in mine.columns:
        if col in ("as_of", "feature_set_version"):
            continue
        a, b = mine[col], theirs[col]
        if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
            ok = np.allclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-9, equal_nan=True)
        else:
            ok = bool(((a.astype(object) == b.astype(object)) | (a.isna() & b.isna())).all())
        if not ok:
            bad.append(col)
    return bad


def write_data(customers: int, per_customer: float, as_of: dt.date) -> None:
    """The data (in its own process, so the measured children do not inherit its memory)."""
    from features_data import tables, write

    from custintel.core.config import FeaturesConfig, ProjectConfig
    from custintel.pipeline.project import init_project

    folder = OUT / f"n{customers}"
    shutil.rmtree(folder, ignore_errors=True)
    data = tables(customers, per_customer)
    project = folder / "shop"
    init_project(project, ProjectConfig(name="bench", features=FeaturesConfig(as_of=as_of)))
    print(json.dumps(write(data, project / "custintel.duckdb", folder / "parquet")))


def generate(customers: int, per_customer: float, as_of: dt.date) -> tuple[Path, dict[str, int]]:
    began = time.perf_counter()
    cmd = [sys.executable, __file__, "--write-data", str(customers), "--as-of", str(as_of)]
    cmd += ["--orders-per-customer", str(per_customer)]
    counts = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"data: {json.dumps(counts)} in {time.perf_counter() - began:.0f} s", flush=True)
    return OUT / f"n{customers}", counts


def run_custintel(folder: Path, as_of: dt.date) -> dict[str, object]:
    cli = [str(Path(sys.executable).parent / "custintel")]
    cmd = [
        *cli,
        "features",
        "build",
        "--project",
        str(folder / "shop"),
        "--as-of",
        str(as_of),
        "--json",
    ]
    seconds, peak, out = measure(cmd)
    built = json.loads(out)
    return {
        "wall_s": round(seconds, 1),
        "peak_rss_gb": round(peak, 2),
        "build_s": built["seconds"],
        "customers_out": built["rows"],
        "features": built["features"],
    }


def run_peer(folder: Path, as_of: dt.date, sample: int) -> dict[str, object]:
    """pandas on the same data; the two outputs compared on a sample of customers."""
    import duckdb

    con = duckdb.connect(str(folder / "shop" / "custintel.duckdb"), read_only=True)
    mine = con.sql(
        f"SELECT * FROM features.customer USING SAMPLE {sample} ROWS (reservoir, 7)"
    ).df()
    con.close()
    mine[["customer_id"]].to_parquet(folder / "sample_ids.parquet")
    cmd = [sys.executable, __file__, "--pandas", str(folder), "--as-of", str(as_of)]
    try:
        seconds, peak, out = measure(cmd)
    except SystemExit as exc:
        return {"failed": str(exc).splitlines()[-1] or "killed (out of memory)"}
    theirs = pd.read_parquet(folder / "pandas_sample.parquet")
    return {
        "wall_s": round(seconds, 1),
        "peak_rss_gb": round(peak, 2),
        **json.loads(out),
        "sample_checked": len(mine),
        "columns_differing": compare(mine, theirs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders-per-customer", type=float, default=20.0)
    parser.add_argument("--as-of", default="2025-06-30")
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument(
        "--pandas-customers",
        type=int,
        default=250_000,
        help="size of the side-by-side run (plain pandas needs more than 24 GB at 1,000,000)",
    )
    parser.add_argument("--pandas", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write-data", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    as_of = dt.date.fromisoformat(args.as_of)
    if args.write_data:
        write_data(args.write_data, args.orders_per_customer, as_of)
        return
    if args.pandas:
        run_pandas(args.pandas, as_of, args.pandas / "sample_ids.parquet")
        return
    result: dict[str, object] = {"machine": f"{os.cpu_count()} cores, {platform.machine()}"}
    folder, counts = generate(args.customers, args.orders_per_customer, as_of)
    result["full"] = {
        "customers": args.customers,
        "rows": counts,
        "custintel": run_custintel(folder, as_of),
    }
    print(json.dumps(result["full"]["custintel"]), flush=True)
    n = args.pandas_customers
    if n:
        if n != args.customers:
            shutil.rmtree(folder, ignore_errors=True)
            folder, counts = generate(n, args.orders_per_customer, as_of)
            mine = run_custintel(folder, as_of)
        else:
            mine = result["full"]["custintel"]
        peer = run_peer(folder, as_of, args.sample)
        side = {"customers": n, "rows": counts, "custintel": mine, "pandas": peer}
        if "wall_s" in peer:
            side["speedup"] = round(peer["wall_s"] / mine["wall_s"], 1)
        result["side_by_side"] = side
        print(json.dumps(side), flush=True)
    (OUT / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
