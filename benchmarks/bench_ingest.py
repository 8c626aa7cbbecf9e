"""Ingest N order rows from one CSV through every quality rule: custintel vs plain pandas.

    python benchmarks/bench_ingest.py                 # 10 million rows (about 1 GB)
    python benchmarks/bench_ingest.py --rows 1000000  # a quicker run

Both contenders run in their own fresh process, one after the other, on the same file;
wall time comes from the parent and peak memory from the child's rusage (max RSS).
The pandas peer applies the same rules as the orders contract (types, not-null, allowed
currency and channel, amount sign and maximum, timestamps in range and not in the future,
duplicate rows and key conflicts) and writes its clean rows to a DuckDB file, so both end
with a clean table in a warehouse.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

OUT = Path(__file__).resolve().parent / "out"


def make_csv(path: Path, rows: int) -> dict[str, int]:
    """Write the orders CSV with known defects; returns how many of each were planted."""
    dup = min(10_000, rows // 100)
    base = rows - dup
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (
          WITH r AS (SELECT i FROM range({base}) t(i) UNION ALL SELECT i FROM range({base - dup}, {base}) t(i))
          SELECT 'O' || i AS order_id,
                 'C' || (hash(i) % 1000000) AS customer_ref,
                 CASE WHEN i % 5000 = 1 THEN 'not a date'
                      ELSE strftime(TIMESTAMP '2023-01-01' + to_seconds((hash(i * 7) % 63072000)::BIGINT),
                                    '%Y-%m-%dT%H:%M:%SZ') END AS order_ts,
                 CASE WHEN i % 2000 = 3 THEN '0.00'
                      ELSE printf('%.2f', 5 + (hash(i * 13) % 40000) / 100.0) END AS amount,
                 CASE WHEN i % 1000 = 7 THEN 'XXX' ELSE 'EUR' END AS currency,
                 CASE WHEN i % 3 = 0 THEN 'store' ELSE 'online' END AS channel,
                 'S' || (i % 40) AS store_id,
                 ['apparel', 'shoes', 'home', 'beauty', 'toys'][1 + i % 5] AS category,
                 1 + i % 4 AS quantity,
                 CASE WHEN i % 10 = 0 THEN '5.00' ELSE '0.00' END AS discount,
                 'false' AS is_return
          FROM r ORDER BY i
        ) TO '{path}' (HEADER)
        """
    )
    # A repeated row that breaks a rule is quarantined twice, not counted as a duplicate.
    planted = con.execute(
        f"""WITH r AS (SELECT i, i >= {base - dup} AS repeated FROM range({base}) t(i)),
                 d AS (SELECT i, repeated, i % 5000 = 1 AS ts, i % 5000 != 1 AND i % 2000 = 3 AS amt,
                              i % 5000 != 1 AND i % 2000 != 3 AND i % 1000 = 7 AS cur FROM r)
            SELECT sum(CASE WHEN ts THEN 1 + repeated::INT ELSE 0 END),
                   sum(CASE WHEN amt THEN 1 + repeated::INT ELSE 0 END),
                   sum(CASE WHEN cur THEN 1 + repeated::INT ELSE 0 END),
                   count(*) FILTER (repeated AND NOT (ts OR amt OR cur))
            FROM d"""
    ).fetchone()
    return {
        "rows": rows,
        "duplicates": int(planted[3]),
        "type.order_ts": int(planted[0]),
        "amount.sign": int(planted[1]),
        "allowed.currency": int(planted[2]),
    }


CUSTINTEL = """
import json, sys
from pathlib import Path
from custintel.core.config import ProjectConfig, SourceConfig, WarehouseConfig
from custintel.pipeline.project import Project, init_project
project = Path(sys.argv[1])
config = ProjectConfig(
    warehouse=WarehouseConfig(url="duckdb://custintel.duckdb", memory_limit=sys.argv[3] or None),
    sources={"orders": SourceConfig(contract="orders", path=sys.argv[2])},
)
init_project(project, config, force=True)
with Project.open(project) as p:
    s = p.ingest().as_dict()
print(json.dumps({k: s[k] for k in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate")}
                 | {"rules": s["results"][0]["rule_counts"], "failed": s["files_failed"]}))
"""

PANDAS = """
import json, sys
from datetime import datetime, timedelta, timezone
import duckdb, pandas as pd
path, db = sys.argv[1], sys.argv[2]
now = datetime.now(timezone.utc)
df = pd.read_csv(path, dtype=str, keep_default_na=False)
rows_in = len(df)
raw = {c: df[c].str.strip().replace("", None) for c in df.columns}
ts = pd.to_datetime(raw["order_ts"], utc=True, errors="coerce", format="ISO8601")
amount = pd.to_numeric(raw["amount"], errors="coerce")
quantity = pd.to_numeric(raw["quantity"], errors="coerce")
discount = pd.to_numeric(raw["discount"], errors="coerce")
currency = raw["currency"].str.upper()
channel = raw["channel"].str.lower()
is_return = raw["is_return"].str.lower().map({"true": True, "false": False, "1": True, "0": False})
rule = pd.Series(None, index=df.index, dtype=object)
def mark(name, bad):
    rule[rule.isna() & bad.fillna(False).astype(bool)] = name
for c in ("order_id", "order_ts", "amount", "currency"):
    mark("not_null." + c, raw[c].isna())
mark("type.order_ts", raw["order_ts"].notna() & ts.isna())
mark("type.amount", raw["amount"].notna() & amount.isna())
mark("type.quantity", raw["quantity"].notna() & quantity.isna())
mark("type.discount", raw["discount"].notna() & discount.isna())
mark("type.is_return", raw["is_return"].notna() & is_return.isna())
mark("allowed.currency", currency.notna() & ~currency.isin(["EUR", "USD", "GBP", "CHF", "SEK"]))
mark("allowed.channel", channel.notna() & ~channel.isin(["online", "store", "app", "phone", "marketplace"]))
mark("range.quantity", quantity < 0)
mark("range.quantity.max", quantity > 100000)
mark("range.discount", discount < 0)
mark("range.amount.max", amount.abs() > 100000)
mark("future.order_ts", ts > pd.Timestamp(now + timedelta(hours=24)))
mark("range.order_ts", ts < pd.Timestamp("1990-01-01", tz="UTC"))
mark("amount.sign", (is_return.fillna(False) & (amount == 0)) | (~is_return.fillna(False) & (amount <= 0)))
clean = pd.DataFrame({"order_id": raw["order_id"], "customer_ref": raw["customer_ref"], "order_ts": ts,
                      "amount": amount, "currency": currency, "channel": channel, "store_id": raw["store_id"],
                      "category": raw["category"], "quantity": quantity, "discount": discount,
                      "is_return": is_return})
valid = rule.isna()
v = clean[valid]
exact = v.duplicated(keep="first")
conflict = v["order_id"].duplicated(keep="first") & ~exact
rule[conflict[conflict].index] = "unique.key"
keep = valid.copy()
keep[exact[exact].index] = False
keep[conflict[conflict].index] = False
exact_count = int(exact.sum())
con = duckdb.connect(db)
out = clean[keep]
con.register("out", out)
con.execute("CREATE OR REPLACE TABLE orders AS SELECT * FROM out")
counts = rule.value_counts().to_dict()
print(json.dumps({"rows_in": rows_in, "rows_clean": int(keep.sum()), "rows_quarantined": int(rule.notna().sum()),
                  "rows_duplicate": exact_count, "rules": {k: int(v) for k, v in counts.items()}}))
"""


def run(code: str, *args: str) -> dict[str, object]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    output = (
        proc.stdout.read() if proc.stdout else ""
    )  # read to EOF first: a full pipe blocks the child
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"contender failed with status {status}")
    result = json.loads(output.strip().splitlines()[-1])
    result["seconds"] = round(seconds, 1)
    result["peak_rss_gb"] = round(usage.ru_maxrss / 1024 / 1024, 2)  # ru_maxrss is in KiB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--memory-limit", default="2.5GB", help="DuckDB limit of the second run")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    csv_path = OUT / f"orders_{args.rows}.csv"
    if not csv_path.exists():
        print(f"writing {csv_path.name} ...", flush=True)
        planted = make_csv(csv_path, args.rows)
        (OUT / f"orders_{args.rows}.json").write_text(json.dumps(planted))
    planted = json.loads((OUT / f"orders_{args.rows}.json").read_text())
    size_gb = csv_path.stat().st_size / 1e9
    print(
        f"{args.rows:,} rows, {size_gb:.2f} GB, {os.cpu_count()} cores, {platform.python_version()}"
    )
    result: dict[str, object] = {"rows": args.rows, "csv_gb": round(size_gb, 2)}
    for label, limit in (("custintel", ""), (f"custintel_{args.memory_limit}", args.memory_limit)):
        project = OUT / "project"
        shutil.rmtree(project, ignore_errors=True)
        ours = run(CUSTINTEL, str(project), str(csv_path), limit)
        print(f"{label}:", json.dumps(ours), flush=True)
        for rule in ("type.order_ts", "amount.sign", "allowed.currency"):
            assert ours["rules"].get(rule) == planted[rule], (rule, ours["rules"], planted)
        assert (
            ours["rows_duplicate"] == planted["duplicates"] and ours["rows_in"] == planted["rows"]
        )
        result[label] = ours
    if not args.skip_pandas:
        db = OUT / "pandas.duckdb"
        db.unlink(missing_ok=True)
        peer = run(PANDAS, str(csv_path), str(db))
        print("pandas:   ", json.dumps(peer))
        assert peer["rows_clean"] == ours["rows_clean"], "the two contenders disagree"
        result["pandas"] = peer
        for label in [k for k in result if k.startswith("custintel")]:
            mine = result[label]
            speed = round(peer["seconds"] / mine["seconds"], 1)
            memory = round(peer["peak_rss_gb"] / mine["peak_rss_gb"], 1)
            result[f"{label}_vs_pandas"] = {"speedup": speed, "memory_ratio": memory}
            print(f"{label}: {speed}x faster than pandas, 1/{memory} of its peak memory")
    (OUT / f"result_{args.rows}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
