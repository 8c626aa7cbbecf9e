"""A SQL source (SQLite): a query streams in batches, an unchanged result is skipped, a
changed one replaces its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from custintel.core.config import SourceConfig, SqlSource
from tests.conftest import ingest, make_project, query


def _db(path: Path, rows: list[tuple[str, str, str, float, str]]) -> None:
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE IF EXISTS sales")
        con.execute("CREATE TABLE sales (id TEXT, who TEXT, at TEXT, total REAL, kind TEXT)")
        con.executemany("INSERT INTO sales VALUES (?,?,?,?,?)", rows)


def test_query_source_loads_skips_and_replaces(tmp_path: Path) -> None:
    source = SourceConfig(
        contract="orders",
        sql=SqlSource(
            url="sqlite:///data/pos.db",
            query="SELECT id, who, at, total FROM sales WHERE kind = 'sale'",
            batch_rows=7,  # many small batches
        ),
        columns={"order_id": "id", "customer_ref": "who", "order_ts": "at", "amount": "total"},
        currency="EUR",
        timezone="Europe/Berlin",
    )
    project = make_project(tmp_path, pos=source)
    db = project / "data" / "pos.db"
    rows = [(f"S{i}", f"C{i % 5}", "2025-06-01 12:00:00", 10.0 + i, "sale") for i in range(50)]
    rows.append(("R1", "C1", "2025-06-02 12:00:00", -5.0, "refund"))
    _db(db, rows)

    first = ingest(project)
    assert (first["files_loaded"], first["rows_in"], first["rows_clean"]) == (1, 50, 50)
    # Berlin summer time is UTC+2.
    ts = query(project, "SELECT order_ts FROM clean.orders WHERE order_id = 'S0'")[0][0]
    assert (ts.hour, ts.utcoffset().total_seconds()) in ((10, 0.0), (12, 7200.0))
    assert ts.timestamp() == 1748772000  # 2025-06-01 10:00:00 UTC

    again = ingest(project)
    assert again["files_skipped"] == 1
    assert again["results"][0]["message"] == "query result unchanged"

    _db(db, [*rows[:40], ("S99", "C9", "not a time", 1.0, "sale")])
    changed = ingest(project)
    assert (changed["rows_in"], changed["rows_clean"], changed["rows_quarantined"]) == (41, 40, 1)
    assert query(project, "SELECT count(*) FROM clean.orders")[0][0] == 40
    assert query(project, "SELECT _file, _line, rule FROM quarantine.rows") == [
        ("sql:pos", 41, "type.order_ts")
    ]
