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
