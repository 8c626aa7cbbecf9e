"""Ordinary real-world files that used to lose rows silently: every record now ends clean,
quarantined with its reason or counted as a duplicate, and the counts reconcile."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from custintel.cli.main import app
from custintel.core.config import SourceConfig
from custintel.pipeline.project import Project
from tests.conftest import ingest, make_project, query

HEADER = "order_id,customer_ref,order_ts,amount,currency\n"


def order_lines(n: int, start: int = 1) -> list[str]:
    return [
        f"O{i},C{i},2025-01-{1 + i % 28:02d},{10 + i % 50}.50,EUR\n"
        for i in range(start, start + n)
    ]


def load(tmp_path: Path, name: str, content: bytes, **source: Any) -> dict[str, Any]:
    project = make_project(
        tmp_path, orders=SourceConfig(contract="orders", path=f"data/{name}", **source)
    )
    (project / "data" / name).write_bytes(content)
    result = ingest(project)["results"][0]
    result["project"] = project
    if result["status"] == "loaded":
        clean = query(project, "SELECT count(*) FROM clean.orders")[0][0]
        quarantined = query(project, "SELECT count(*) FROM quarantine.rows")[0][0]
        assert (clean, quarantined) == (result["rows_clean"], result["rows_quarantined"])
    return result


def test_a_stray_quote_costs_its_line_only(tmp_path: Path) -> None:
    """Observation 1: a quote opening a field on line 101 of 42,186 lines."""
    lines = order_lines(42_185)
    lines[99] = 'O100,"C100,2025-01-02,10.50,EUR\n'  # line 101 of the file
    r = load(tmp_path, "orders.csv", (HEADER + "".join(lines)).encode())
    assert r["status"] == "loaded"
    assert (r["rows_in"], r["rows_clean"], r["rows_quarantined"]) == (42_185, 42_184, 1)
    bad = query(r["project"], "SELECT _line, rule, message FROM quarantine.rows")
    assert bad[0][:2] == (101, "malformed") and "QUOTE" in bad[0][2]
    # the lines after it keep their own line numbers
    assert query(r["project"], "SELECT _line FROM clean.orders WHERE order_id = 'O101'") == [(102,)]


def test_a_stray_quote_in_a_small_file(tmp_path: Path) -> None:
    lines = order_lines(19)
    lines[1] = 'O2,"C2,2025-01-02,10.50,EUR\n'
    r = load(tmp_path, "small.csv", (HEADER + "".join(lines)).encode())
    assert (r["rows_in"], r["rows_clean"], r["rows_quarantined"]) == (19, 18, 1)


def test_multiline_fields_and_blank_lines_keep_their_line_numbers(tmp_path: Path) -> None:
    body = (
        HEADER
        + 'O1,"C1\nsecond line",2025-01-01,10,EUR\n'
        + "\n"
        + "O2,C2,2025-01-01,10,EUR\n"
        + 'O3,"C3"x,2025-01-01,10,EUR\n'
        + "O4,C4,2025-01-01,10,EUR\n"
    )
    r = load(tmp_path, "multi.csv", body.encode())
    assert (r["rows_in"], r["rows_clean"], r["rows_quarantined"]) == (4, 3, 1)
    lines = dict(query(r["project"], "SELECT order_id, _line FROM clean.orders"))
    assert lines == {"O1": 2, "O2": 5, "O4": 7}
    assert query(r["project"], "SELECT _line FROM quarantine.rows") == [(6,)]


def test_a_truncated_gzip_fails_whole(tmp_path: Path) -> None:
    """Observation 2: a .csv.gz cut short loaded as complete."""
    packed = gzip.compress((HEADER + "".join(order_lines(3000))).encode())
    r = load(tmp_path, "cut.csv.gz", packed[: len(packed) // 3])
    assert r["status"] == "failed"
    assert "truncated or corrupt" in r["message"] and "cut.csv.gz" in r["message"]
    assert query(r["project"], "SELECT count(*) FROM ops.ingested_files") == [(0,)]


def test_a_truncated_zstd_fails_whole(tmp_path: Path) -> None:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write((HEADER + "".join(order_lines(3000))).encode())
    packed = sink.getvalue().to_pybytes()
    r = load(tmp_path, "cut.csv.zst", packed[: len(packed) // 2])
    assert r["status"] == "failed" and "truncated or corrupt" in r["message"]


def test_a_corrupt_parquet_fails_whole(tmp_path: Path) -> None:
    table = pa.table(
        {
            "order_id": [f"O{i}" for i in range(5000)],
            "order_ts": ["2025-01-01"] * 5000,
            "amount": [f"{i}.5" for i in range(5000)],
            "currency": ["EUR"] * 5000,
        }
    )
    path = tmp_path / "whole.parquet"
    pq.write_table(table, path, row_group_size=1000, compression="none")
    data = bytearray(path.read_bytes())
    truncated = bytes(data[: len(data) // 2])
    r = load(tmp_path, "half.parquet", truncated)
    assert r["status"] == "failed" and "half.parquet" in r["message"]


def test_numbers_are_never_rounded_silently(tmp_path: Path) -> None:
    """Observation 6: 2.5, 3.7, 1e2 stored as 3, 4, 100; 12.34567, 1e3, 1_234.50 altered."""
    rows = [
        ("A1", "2.5", "12.30", "type.quantity"),
        ("A2", "3.7", "1", "type.quantity"),
        ("A3", "1e2", "1", "type.quantity"),
        ("A4", "1", "12.34567", "type.amount"),
        ("A5", "1", "1e3", "type.amount"),
        ("A6", "1", "1_234.50", "type.amount"),
        ("A7", "3.0", "12.3400", "clean"),
        ("A8", "+2", ".5", "clean"),
    ]
    body = "order_id,order_ts,amount,currency,quantity\n" + "".join(
        f"{o},2025-01-01,{a},EUR,{q}\n" for o, q, a, _ in rows
    )
    r = load(tmp_path, "n.csv", body.encode())
    got = dict(
        query(
            r["project"],
            "SELECT json_extract_string(raw, '$.order_id'), rule FROM quarantine.rows",
        )
    )
    assert got == {o: rule for o, _, _, rule in rows if rule != "clean"}
    messages = " ".join(m for (m,) in query(r["project"], "SELECT message FROM quarantine.rows"))
    for words in (
        "not a whole number",
        "scientific notation",
        "more than 4 decimals",
        "separators",
    ):
        assert words in messages
    clean = {
        o: (q, str(a))
        for o, q, a in query(r["project"], "SELECT order_id, quantity, amount FROM clean.orders")
    }
    assert clean == {"A7": (3, "12.3400"), "A8": (2, "0.5000")}


def test_a_latin1_byte_in_json_lines_costs_its_line(tmp_path: Path) -> None:
    """Observation 10: one Latin-1 byte failed a JSON-lines file with a message about CSV."""
    good = [
        json.dumps(
            {"order_id": f"O{i}", "order_ts": "2025-01-01", "amount": "10", "currency": "EUR"}
        )
        for i in range(3)
    ]
    body = (
        good[0].encode()
        + b"\n"
        + '{"order_id": "O9", "customer_ref": "M\u00fcller", "order_ts": "2025-01-01", "amount": "1", "currency": "EUR"}'.encode(
            "latin-1"
        )
        + b"\n\n"
        + b"\n".join(g.encode() for g in good[1:])
        + b"\n"
    )
    r = load(tmp_path, "o.jsonl", body)
    assert (r["status"], r["rows_in"], r["rows_clean"]) == ("loaded", 4, 3)
    line, message = query(r["project"], "SELECT _line, message FROM quarantine.rows")[0]
    assert line == 2 and "INVALID ENCODING" in message and "CSV" not in message
    assert dict(query(r["project"], "SELECT order_id, _line FROM clean.orders")) == {
        "O0": 1,
        "O1": 4,
        "O2": 5,
    }


def test_a_tsv_file_is_tab_separated_by_default(tmp_path: Path) -> None:
    """Observation 10: a .tsv with the default delimiter was called a binary file."""
    body = HEADER.replace(",", "\t") + "".join(line.replace(",", "\t") for line in order_lines(3))
    r = load(tmp_path, "o.tsv", body.encode())
    assert (r["status"], r["rows_clean"]) == ("loaded", 3)
    r = load(tmp_path / "b", "o.csv", body.encode())
    assert r["status"] == "failed" and "tab-separated" in r["message"]


def two_files(tmp_path: Path, **source: Any) -> Path:
    project = make_project(
        tmp_path, orders=SourceConfig(contract="orders", path="data/*.csv", **source)
    )
    rows = {i: f"O{i},C{i},2025-01-0{i},1{i}.00,EUR\n" for i in range(1, 9)}
    (project / "data" / "a.csv").write_text(HEADER + "".join(rows[i] for i in range(1, 6)))
    (project / "data" / "b.csv").write_text(HEADER + "".join(rows[i] for i in range(5, 9)))
    first = ingest(project)
    assert [r["rows_duplicate"] for r in first["results"]] == [0, 1]
    return project


def orders_in(project: Path) -> list[str]:
    return [o for (o,) in query(project, "SELECT order_id FROM clean.orders ORDER BY order_id")]


def test_correcting_an_overlapping_export_keeps_the_row_the_other_file_holds(
    tmp_path: Path,
) -> None:
    """Observation 3: a.csv O1-O5, b.csv O5-O8; a.csv rewritten without O5 lost O5."""
    project = two_files(tmp_path)
    a = project / "data" / "a.csv"
    a.write_text(
        HEADER + "".join(line for line in a.read_text().splitlines(True)[1:] if "O5" not in line)
    )
    summary = ingest(project)
    assert orders_in(project) == [f"O{i}" for i in range(1, 9)]
    b = next(r for r in summary["results"] if r["file"].endswith("b.csv"))
    assert b["status"] == "loaded" and "reloaded" in b["message"] and b["rows_duplicate"] == 0
    assert query(project, "SELECT _file FROM clean.orders WHERE order_id = 'O5'")[0][0].endswith(
        "b.csv"
    )
    # and once settled, nothing is loaded again
    assert {r["status"] for r in ingest(project)["results"]} == {"skipped"}


def test_a_deleted_file_is_reported_and_its_rows_kept_by_default(tmp_path: Path) -> None:
    """Observation 5: a deleted file's rows stayed with nothing reported."""
    project = two_files(tmp_path)
    (project / "data" / "a.csv").unlink()
    summary = ingest(project)
    missing = [r for r in summary["results"] if r["status"] == "missing"]
    assert [r["file"] for r in missing] == ["data/a.csv"]
    assert any("a.csv is no longer there" in w for w in summary["warnings"])
    assert orders_in(project) == [f"O{i}" for i in range(1, 9)]


def test_a_deleted_file_is_removed_when_configured(tmp_path: Path) -> None:
    project = two_files(tmp_path, deleted_files="remove")
    (project / "data" / "a.csv").unlink()
    summary = ingest(project)
    statuses = {r["file"]: r["status"] for r in summary["results"]}
    assert statuses == {"data/a.csv": "removed", "data/b.csv": "loaded"}
    # O5 came back from b.csv, where it had been a duplicate of a.csv's row
    assert orders_in(project) == [f"O{i}" for i in range(5, 9)]
    assert query(project, "SELECT count(*) FROM ops.ingested_files WHERE file = 'data/a.csv'") == [
        (0,)
    ]


def test_a_path_that_matches_nothing_warns_and_fails_when_strict(tmp_path: Path) -> None:
    """Observation 4: a typo, an empty glob or a folder loaded nothing without a word."""
    project = make_project(
        tmp_path,
        typo=SourceConfig(contract="orders", path="data/ordres/*.csv"),
        folder=SourceConfig(contract="orders", path="data"),
    )
    summary = ingest(project)
    assert summary["results"] == [] and len(summary["warnings"]) == 2
    assert "'data/ordres/*.csv' matches no input file" in summary["warnings"][0]
    assert "give a file pattern such as data/*.csv" in summary["warnings"][1]
    with Project.open(project) as p:
        from custintel.report import write_reports

        page = (write_reports(p).parent / "quality.html").read_text()
    assert "Warnings of the last ingest run" in page and "data/ordres/*.csv" in page
    strict = ingest(project, strict=True)
    assert [r["status"] for r in strict["results"]] == ["failed", "failed"]


def test_a_stray_file_in_the_folder_is_reported_and_the_rest_loads(tmp_path: Path) -> None:
    """Observation 8: a README.md beside a.csv failed the whole source."""
    project = make_project(tmp_path, orders=SourceConfig(contract="orders", path="data/*"))
    (project / "data" / "README.md").write_text("# exports\n")
    (project / "data" / "a.csv").write_text(HEADER + "".join(order_lines(3)))
    summary = ingest(project)
    statuses = {r["file"]: r["status"] for r in summary["results"]}
    assert statuses == {"data/README.md": "ignored", "data/a.csv": "loaded"}
    assert summary["rows_clean"] == 3 and "README.md" in summary["warnings"][0]


def test_dates_after_the_data_are_refused_or_marked_as_a_projection(
    runner: Any, sample_project: tuple[Path, dict[str, Any]]
) -> None:
    """Observation 7: score --as-of 2030-01-01 and features build --as-of 2031-01-01 stored
    rows as if the customers existed then."""
    project, _ = sample_project
    ingest(project)
    with Project.open(project) as p:
        p.identity_resolve()
    for args in (
        ["features", "build", "--as-of", "2031-01-01"],
        ["score", "churn_90d", "--as-of", "2030-01-01"],
        ["score", "clv", "--as-of", "2030-01-01"],
    ):
        result = runner.invoke(app, [*args, "--project", str(project)])
        assert result.exit_code == 1, result.output
        assert "lies after the data" in result.stderr and "--projection" in result.stderr
    result = runner.invoke(
        app,
        ["features", "build", "--as-of", "2031-01-01", "--projection", "--project", str(project)],
    )
    assert result.exit_code == 0, result.output
    marked = query(project, "SELECT table_name, as_of FROM ops.projections")
    assert marked == [("features.customer", "2031-01-01")]


def _fingerprint(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_read_only_commands_write_nothing(
    runner: Any, sample_project: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Observation 11: status and quality failed on a read-only project. The commands that
    only look open the warehouse read-only and leave every byte of the folder as it was."""
    project, _ = sample_project
    ingest(project)
    with Project.open(project) as p:
        p.identity_resolve()
    customer = query(project, "SELECT min(customer_id) FROM identity.customer_map")[0][0]
    before = _fingerprint(project)
    for args in (
        ["status"],
        ["quality"],
        ["report", "--out", str(tmp_path / "pages")],
        ["identity", "explain", customer],
        ["model", "list"],
    ):
        result = runner.invoke(app, [*args, "--project", str(project)])
        assert result.exit_code == 0, (args, result.output)
    assert _fingerprint(project) == before
    assert (tmp_path / "pages" / "index.html").is_file()


def test_read_only_folder_as_another_user(
    sample_project: tuple[Path, dict[str, Any]], tmp_path_factory: Any
) -> None:
    """The same on a folder its user cannot write (needs root to switch to nobody)."""

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to act as another user")
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    if subprocess.run(
        [*as_nobody, sys.executable, "-c", "import custintel"], capture_output=True
    ).returncode:
        pytest.skip("this checkout is not readable by nobody")
    project, _ = sample_project
    ingest(project)
    place = Path(tempfile.mkdtemp(prefix="custintel-ro-"))
    place.chmod(0o755)
    shutil.copytree(project, place / "shop")
    (place / "shop" / "custintel.yaml").write_text(
        (project / "custintel.yaml").read_text().replace(str(project), str(place / "shop"))
    )
    for path in [place / "shop", *(place / "shop").rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        for command in ("status", "quality"):
            done = subprocess.run(
                [
                    *as_nobody,
                    sys.executable,
                    "-m",
                    "custintel.cli",
                    command,
                    "--project",
                    str(place / "shop"),
                ],
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr
    finally:
        for path in [place / "shop", *(place / "shop").rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(place)
