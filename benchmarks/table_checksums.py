"""Row counts and a checksum per table of a project's warehouse, to show a change of code
left the tables as they were.

    python benchmarks/table_checksums.py demo_shop > before.json
    ... change the code, run `make demo` again ...
    python benchmarks/table_checksums.py demo_shop --against before.json

The checksum ignores row order and the columns that record when or by which run a row
was written (``*_at``, ``run_id``, load ids, ``seconds`` ...) and rounds floating-point
columns to nine significant digits. Where a table differs, it names the columns that do.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import duckdb

VOLATILE = re.compile(
    r"(_at$|^at$|^run_id$|load_id$|^started$|^finished$|seconds|^computed$|^path$"
    r"|^artifact|^file$|^loaded|^trained|^created$|^code_version$|_ms$|^duration|^mtime"
    r"|^host$|^uri$|^first_seen$|^last_changed$)"
)
"""Columns that differ between two runs of the same code on the same data."""


def _expression(column: str, kind: str) -> str:
    quoted = '"' + column.replace('"', '""') + '"'
    if kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL"):
        # nine significant digits: summation order may move the last bits
        return f"CASE WHEN {quoted} IS NULL OR isnan({quoted}::DOUBLE) THEN NULL ELSE printf('%.9g', {quoted}::DOUBLE) END"
    if kind.endswith("[]") or kind.startswith(("STRUCT", "MAP")):
        return f"CAST({quoted} AS VARCHAR)"
    return quoted


def checksums(database: Path) -> dict[str, dict[str, object]]:
    """``{schema.table: {rows, checksum, columns}}`` for every table of the warehouse."""
    con = duckdb.connect(str(database), read_only=True)
    out: dict[str, dict[str, object]] = {}
    tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
    ).fetchall()
    for schema, name in tables:
        columns = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
        kept = sorted((c, t) for c, t in columns if not VOLATILE.search(c))
        target = f'"{schema}"."{name}"'
        parts = [_expression(c, t) for c, t in kept]
        sums = [f"coalesce(sum(hash({', '.join(parts)})::HUGEINT), 0)" if parts else "0"]
        sums += [f"coalesce(sum(hash({e})::HUGEINT), 0)" for e in parts]
        found = con.execute(f"SELECT count(*), {', '.join(sums)} FROM {target}").fetchone()
        out[f"{schema}.{name}"] = {
            "rows": int(found[0]),
            "checksum": str(int(found[1]) % (1 << 64)),
            "columns": {
                c: str(int(v) % (1 << 64)) for (c, _), v in zip(kept, found[2:], strict=True)
            },
        }
    con.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--against", type=Path, help="earlier output to compare with")
    args = parser.parse_args()
    now = checksums(args.project / "custintel.duckdb")
    if args.against is None:
        json.dump(now, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    before = json.loads(args.against.read_text())
    problems = []
    for table in sorted(set(before) | set(now)):
        a, b = before.get(table), now.get(table)
        if a is None or b is None:
            problems.append(f"{table}: {'new' if a is None else 'gone'}")
        elif a["rows"] != b["rows"]:
            problems.append(f"{table}: rows {a['rows']:,} -> {b['rows']:,}")
        elif a["checksum"] != b["checksum"]:
            cols = sorted(set(a["columns"]) | set(b["columns"]))
            moved = [c for c in cols if a["columns"].get(c) != b["columns"].get(c)]
            problems.append(f"{table}: same rows, values differ in {', '.join(moved)}")
    same = len(set(before) & set(now)) - sum(": " in p and "new" not in p for p in problems)
    print(f"{len(now)} tables; {same} equal to {args.against}")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
