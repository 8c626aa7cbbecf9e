"""Feature stability (PSI) in the warehouse against pandas over whole frames.

    python benchmarks/bench_stability.py [--rows 1000000] [--numeric 40] [--categorical 5]

Two feature tables of ``rows`` customers (the second shifted) in a DuckDB file. custintel
computes the PSI of every column with three queries per table (``custintel.stats.psi``);
the comparison reads both tables into pandas and bins them with numpy, the way it was
done before. Each side runs in a fresh process so its peak memory is its own; both must
give the same PSI.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

PANDAS_SIDE = """
import json, sys, time
import duckdb, numpy as np, pandas as pd
path, cols = sys.argv[1], json.loads(sys.argv[2])
start = time.perf_counter()
con = duckdb.connect(path, read_only=True)
ref = con.execute("SELECT * FROM ref").df(); cur = con.execute("SELECT * FROM cur").df()
out = {}
for c in cols:
    r, k = ref[c], cur[c]
    if pd.api.types.is_numeric_dtype(r):
        x = r.dropna().to_numpy(dtype="float64")
        edges = np.unique(np.r_[x.min(), np.quantile(x, np.linspace(0, 1, 11)[1:-1])])
        def share(v):
            m = v.isna().to_numpy()
            idx = np.searchsorted(edges, v.to_numpy(dtype="float64", na_value=np.nan)[~m], "right")
            return np.append(np.bincount(idx, minlength=len(edges) + 1), m.sum()) / len(v)
    else:
        cats = sorted(r.dropna().astype(str).unique())
        def share(v):
            m = v.isna().to_numpy(); t = v.astype("string")
            n = [int(((t == c) & ~m).sum()) for c in cats]
            return np.array([*n, int((~m).sum()) - sum(n), int(m.sum())]) / len(v)
    a, b = np.maximum(share(r), 1e-4), np.maximum(share(k), 1e-4)
    out[c] = float(np.sum((b - a) * np.log(b / a)))
print(json.dumps({"seconds": time.perf_counter() - start, "psi": out}))
"""

CUSTINTEL_SIDE = """
import json, sys, time
import ibis
from custintel.stats import stability
path, cols = sys.argv[1], json.loads(sys.argv[2])
start = time.perf_counter()
con = ibis.duckdb.connect(path, read_only=True)
table = stability(con.table("ref"), con.table("cur"), cols)
out = dict(zip(table.feature, table.psi))
print(json.dumps({"seconds": time.perf_counter() - start, "psi": out}))
"""


def _make(path: Path, rows: int, numeric: int, categorical: int) -> list[str]:
    rng = np.random.default_rng(0)
    con = duckdb.connect(str(path))
    cols = []
    for name, shift in (("ref", 1.0), ("cur", 1.15)):
        data = {}
        for i in range(numeric):
            x = rng.gamma(2.0, 10.0 * shift, rows)
            x[rng.random(rows) < 0.05] = np.nan
            data[f"n{i}"] = x if i % 2 else np.round(x)
        for i in range(categorical):
            data[f"c{i}"] = rng.choice(["a", "b", "c", "d", "e"], rows).astype(object)
        frame = pd.DataFrame(data)  # noqa: F841 (read by DuckDB below)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        cols = list(data)
    con.close()
    return cols


def _run(code: str, path: Path, cols: list[str]) -> dict:
    wrapped = code + (
        "\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapped, str(path), json.dumps(cols)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    result = json.loads(next(line for line in out if line.startswith("{")))
    result["peak_mb"] = int(out[-1]) / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--numeric", type=int, default=40)
    parser.add_argument("--categorical", type=int, default=5)
    parser.add_argument("--make", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        print(json.dumps(_make(Path(args.make), args.rows, args.numeric, args.categorical)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.duckdb"
        # made in a child process: the peak memory a process reports (ru_maxrss) survives
        # fork and exec, so a parent holding the data would inflate both sides' figures
        made = subprocess.run(
            [
                sys.executable,
                __file__,
                "--make",
                str(path),
                "--rows",
                str(args.rows),
                "--numeric",
                str(args.numeric),
                "--categorical",
                str(args.categorical),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        cols = json.loads(made.stdout.splitlines()[-1])
        ours = _run(CUSTINTEL_SIDE, path, cols)
        theirs = _run(PANDAS_SIDE, path, cols)
    gap = max(abs(ours["psi"][c] - theirs["psi"][c]) for c in cols)
    print(f"{args.rows:,} rows x {len(cols)} columns, two tables")
    print(f"custintel (in the warehouse): {ours['seconds']:.2f} s, peak {ours['peak_mb']:,.0f} MB")
    print(
        f"pandas over whole frames:     {theirs['seconds']:.2f} s, peak {theirs['peak_mb']:,.0f} MB"
    )
    print(
        f"time ratio {theirs['seconds'] / ours['seconds']:.1f}x, memory ratio "
        f"{theirs['peak_mb'] / ours['peak_mb']:.1f}x; largest PSI difference {gap:.2e}"
    )


if __name__ == "__main__":
    main()
