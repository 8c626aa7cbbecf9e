"""Ingest the sample retailer and compare every count with the defects planted in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ingest, query


@pytest.fixture
def loaded(
    sample_project: tuple[Path, dict[str, Any]],
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    project, truth = sample_project
    return project, truth, ingest(project)


def _by_source(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in summary["results"]:
        s = out.setdefault(
            r["source"],
            {"rows_in": 0, "duplicates": 0, "rules": {}, "flags": {}, "clean": 0, "q": 0},
        )
        s["rows_in"] += r["rows_in"]
        s["duplicates"] += r["rows_duplicate"]
        s["clean"] += r["rows_clean"]
        s["q"] += r["rows_quarantined"]
        for k, v in r["rule_counts"].items():
            s["rules"][k] = s["rules"].get(k, 0) + v
        # A bad optional value is flagged (row kept as is) or cleared (row kept without
        # it): both are what the sample planted as "flags".
        for k, v in {**r["flag_counts"], **r["field_counts"]}.items():
            s["flags"][k] = s["flags"].get(k, 0) + v
    return out


def test_every_planted_defect_is_caught_and_nothing_else(loaded: Any) -> None:
    _, truth, summary = loaded
    assert summary["files_failed"] == 0, summary
    got = _by_source(summary)
    assert set(got) == set(truth)
    for source, expected in truth.items():
        assert got[source]["rows_in"] == expected["rows_in"], source
        assert got[source]["rules"] == expected["rules"], source
        assert got[source]["duplicates"] == expected["duplicates"], source
        assert got[source]["flags"] == expected["flags"], source


def test_counts_reconcile_with_the_tables(loaded: Any) -> None:
    project, _, summary = loaded
    assert (
        summary["rows_in"]
        == summary["rows_clean"] + summary["rows_quarantined"] + summary["rows_duplicate"]
    )
    tables = [
        r[0]
        for r in query(
            project, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'clean'"
        )
    ]
    clean = sum(query(project, f"SELECT count(*) FROM clean.{t}")[0][0] for t in tables)
    assert clean == summary["rows_clean"]
    assert (
        query(project, "SELECT count(*) FROM quarantine.rows")[0][0] == summary["rows_quarantined"]
    )
    runs = query(
        project,
        "SELECT rows_in, rows_clean, rows_quarantined, rows_duplicate, reconciled FROM ops.ingest_runs",
    )
    assert runs == [
        (
            summary["rows_in"],
            summary["rows_clean"],
            summary["rows_quarantined"],
            summary["rows_duplicate"],
            True,
        )
    ]


def test_quarantine_names_file_line_rule_and_raw_values(loaded: Any) -> None:
    project, _, _ = loaded
    rows = query(
        project,
        "SELECT _file, _line, rule, column_name, message, raw FROM quarantine.rows ORDER BY _file, _line",
    )
    by_rule = {r[2]: r for r in rows}
    # orders_2025_01.csv: data row 15 (index 14) had the unparseable timestamp -> line 16.
    f, line, _, column, message, raw = by_rule["type.order_ts"]
    assert f.endswith("data/shop/orders_2025_01.csv") and (line, column) == (16, "order_ts")
    assert "'31/02/2025 25:61' is not a valid timestamp" in message
    assert json.loads(raw)["created"] == "31/02/2025 25:61"
    # The ragged CRM line is the last line of its file: header + 402 rows + 1.
    f, line, _, _, message, raw = next(
        r for r in rows if r[2] == "malformed" and "data/crm" in r[0]
    )
    assert line == 404 and "MISSING COLUMNS" in message
    assert json.loads(raw) == {"line": "CRM9999;Broken;Row;too;few"}
    key = by_rule["unique.key"]
    assert "same key as line 22" in key[4]


def test_parsed_values_are_typed_in_utc_and_normalised(loaded: Any) -> None:
    project, _, _ = loaded
    # CRM times are Berlin wall-clock times: 25.01.2024 02:28 CET is 01:28 UTC.
    created = query(project, "SELECT created_at FROM clean.customers WHERE source_id = 'CRM1000'")[
        0
    ][0]
    assert created.astimezone(UTC) == datetime(2024, 1, 25, 1, 28, tzinfo=UTC)
    birth = query(project, "SELECT birth_date FROM clean.customers WHERE source_id = 'CRM1000'")[0][
        0
    ]
    assert str(birth) == "1953-10-12"
    # Store tills have no currency column: the source default applies; channel is a constant.
    store = query(
        project,
        "SELECT DISTINCT currency, channel, source FROM clean.orders WHERE _source = 'store_orders'",
    )
    assert store == [("EUR", "store", "loyalty")]
    # 'Store' in the web-shop export is normalised to the allowed lower-case value.
    assert (
        query(
            project,
            "SELECT count(*) FROM clean.orders WHERE channel = 'store' AND _source = 'shop_orders'",
        )[0][0]
        == 1
    )
    ret = query(project, "SELECT amount, is_return FROM clean.orders WHERE is_return")
    assert ret == [(Decimal("-49.9000"), True)]
    extra = query(project, "SELECT _extra FROM clean.customers WHERE source_id = 'CRM1000'")[0][0]
    assert set(json.loads(extra)) == {"Newsletter"}


def test_lineage_and_registry_record_each_input(loaded: Any) -> None:
    project, _, summary = loaded
    lineage = query(
        project,
        "SELECT source, input, input_hash, output, rows_in, code_version, config_hash FROM ops.lineage",
    )
    assert len(lineage) == len(summary["results"])
    assert all(len(r[2]) >= 16 and r[3].startswith("clean.") and r[5] and r[6] for r in lineage)
    files = query(
        project,
        "SELECT file, sha256 FROM ops.ingested_files WHERE source = 'shop_orders' ORDER BY file",
    )
    assert [f.rsplit("/", 1)[-1] for f, _ in files] == ["orders_2025_01.csv", "orders_2025_02.csv"]
