"""Warehouse write primitives on a real DuckDB file."""

from __future__ import annotations

from pathlib import Path

import pytest

from custintel.core.errors import WarehouseError
from custintel.core.warehouse import SCHEMAS, Warehouse


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    with Warehouse.open("duckdb://wh.duckdb", tmp_path) as warehouse:
        yield warehouse


def _values(wh: Warehouse, name: str) -> list[int]:
    return sorted(wh.table("clean", name).x.execute().tolist())


def test_open_creates_the_file_and_schemas(tmp_path: Path, wh: Warehouse) -> None:
    assert (tmp_path / "wh.duckdb").is_file()
    for schema in SCHEMAS:
        assert wh.tables(schema) == []


def test_append_creates_then_adds_by_name(wh: Warehouse) -> None:
    wh.append("clean", "t", "SELECT 1 AS x, 'a' AS y")
    wh.append("clean", "t", "SELECT 'b' AS y, 2 AS x")  # other column order
    assert _values(wh, "t") == [1, 2]


def test_replace_may_read_the_table_itself(wh: Warehouse) -> None:
    wh.append("clean", "t", "SELECT range AS x FROM range(5)")
    t = wh.table("clean", "t")
    wh.replace("clean", "t", t.filter(t.x > 2))
    assert _values(wh, "t") == [3, 4]


def test_delete_where_and_a_failed_transaction_rolls_back(wh: Warehouse) -> None:
    wh.append("clean", "t", "SELECT range AS x FROM range(4)")
    wh.delete_where("clean", "t", "x < 2")
    assert _values(wh, "t") == [2, 3]
    with pytest.raises(RuntimeError), wh.transaction():
        wh.delete_where("clean", "t", "true")
        wh.append("clean", "t", "SELECT 9 AS x")
        raise RuntimeError("crash between writes")
    assert _values(wh, "t") == [2, 3]


def test_bad_urls_and_missing_tables_are_clear(tmp_path: Path, wh: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="cannot open warehouse"):
        Warehouse.open("nosuchengine://x", tmp_path)
    with pytest.raises(WarehouseError, match=r"table clean\.nope does not exist"):
        wh.table("clean", "nope")


def test_a_writer_waits_for_a_reader_and_says_who_holds_the_file(tmp_path) -> None:
    """DuckDB allows one writer or several readers: a reader in another process makes a
    writer wait (warehouse.lock_wait_s), then fail with a message that says what to do."""
    import subprocess
    import sys
    import time

    with Warehouse.open("duckdb://wh.duckdb", tmp_path):
        pass
    path = tmp_path / "wh.duckdb"
    marker = tmp_path / "reading"
    hold = (
        "import duckdb, pathlib, sys, time\n"
        f"con = duckdb.connect({str(path)!r}, read_only=True)\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        "time.sleep(float(sys.argv[1]))\n"
        "con.close()\n"
    )
    reader = subprocess.Popen([sys.executable, "-c", hold, "30"])
    try:
        while not marker.exists():
            time.sleep(0.05)
        with pytest.raises(
            WarehouseError, match=r"open in another process \(PID \d+\).*lock_wait_s"
        ):
            Warehouse.open("duckdb://wh.duckdb", tmp_path, lock_wait_s=0.5)
        # readers do not block each other
        with Warehouse.open("duckdb://wh.duckdb", tmp_path, read_only=True) as ro:
            assert ro.read_only
    finally:
        reader.kill()
        reader.wait()
    marker.unlink()
    reader = subprocess.Popen([sys.executable, "-c", hold, "1.5"])
    try:
        while not marker.exists():
            time.sleep(0.05)
        started = time.monotonic()
        with Warehouse.open("duckdb://wh.duckdb", tmp_path, lock_wait_s=20) as wh:
            wh.sql("CREATE TABLE ops.waited AS SELECT 1 AS x")
        assert 0.5 < time.monotonic() - started < 15
    finally:
        reader.wait()
