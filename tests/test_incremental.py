"""Idempotent, incremental and crash-safe loads."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
from pathlib import Path

from custintel.core.config import SourceConfig
from tests.conftest import ingest, make_project, paused_ingest, query

HEADER = ["order_id", "customer_ref", "order_ts", "amount", "currency"]


def write_orders(path: Path, start: int, n: int, *, amount: str = "10.00") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(HEADER)
        for i in range(start, start + n):
            w.writerow(
                [f"O{i}", f"C{i % 97}", f"2025-03-{1 + i % 28:02d}T10:00:00Z", amount, "EUR"]
            )


def orders_project(tmp_path: Path) -> Path:
    return make_project(tmp_path, orders=SourceConfig(contract="orders", path="data/orders/*.csv"))


def counts(project: Path) -> tuple[int, int, int]:
    clean = query(project, "SELECT count(*), count(DISTINCT order_id) FROM clean.orders")[0]
    files = query(project, "SELECT count(*) FROM ops.ingested_files")[0][0]
    return int(clean[0]), int(clean[1]), int(files)


def test_same_file_again_is_a_no_op(tmp_path: Path) -> None:
    project = orders_project(tmp_path)
    write_orders(project / "data/orders/a.csv", 0, 100)
    first = ingest(project)
    second = ingest(project)
    assert first["files_loaded"] == 1 and first["rows_clean"] == 100
    assert second["files_loaded"] == 0 and second["files_skipped"] == 1
    assert counts(project) == (100, 100, 1)


def test_new_files_are_picked_up_incrementally(tmp_path: Path) -> None:
    project = orders_project(tmp_path)
    write_orders(project / "data/orders/a.csv", 0, 100)
    ingest(project)
    write_orders(project / "data/orders/b.csv", 80, 50)  # overlaps a.csv by 20 identical orders
    summary = ingest(project)
    assert summary["files_loaded"] == 1 and summary["files_skipped"] == 1
    assert (summary["rows_clean"], summary["rows_duplicate"]) == (30, 20)
    assert counts(project) == (130, 130, 2)


def test_changed_file_replaces_its_own_rows(tmp_path: Path) -> None:
    project = orders_project(tmp_path)
    write_orders(project / "data/orders/a.csv", 0, 100)
    write_orders(project / "data/orders/b.csv", 100, 10)
    ingest(project)
    write_orders(
        project / "data/orders/a.csv", 0, 60, amount="12.50"
    )  # re-exported: fewer rows, new prices
    summary = ingest(project)
    assert summary["files_loaded"] == 1
    assert counts(project) == (70, 70, 2)
    amounts = query(
        project, "SELECT DISTINCT amount FROM clean.orders WHERE _file = 'data/orders/a.csv'"
    )
    assert [float(a[0]) for a in amounts] == [12.5]


def test_renamed_copy_of_a_loaded_file_is_skipped(tmp_path: Path) -> None:
    project = orders_project(tmp_path)
    write_orders(project / "data/orders/a.csv", 0, 10)
    ingest(project)
    (project / "data/orders/a_copy.csv").write_bytes((project / "data/orders/a.csv").read_bytes())
    summary = ingest(project)
    assert summary["files_skipped"] == 2
    copy = next(r for r in summary["results"] if r["file"].endswith("a_copy.csv"))
    assert copy["message"] == "same content as data/orders/a.csv"
    assert counts(project) == (10, 10, 1)


def test_a_run_killed_mid_load_leaves_nothing_and_rerun_completes(tmp_path: Path) -> None:
    project = orders_project(tmp_path)
    write_orders(project / "data/orders/a.csv", 0, 100)
    ingest(project)
    write_orders(project / "data/orders/b.csv", 100, 5000)
    marker = tmp_path / "paused"
    proc = paused_ingest(
        project,
        marker,
        args=["--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # b.csv's clean rows are written inside the open transaction; kill it there.
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert counts(project) == (100, 100, 1)
    assert query(project, "SELECT count(*) FROM ops.lineage")[0][0] == 1
    summary = ingest(project)
    assert summary["files_loaded"] == 1 and summary["rows_clean"] == 5000
    assert counts(project) == (5100, 5100, 2)
