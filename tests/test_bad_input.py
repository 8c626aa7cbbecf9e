"""Bad input never crashes and never loses a row: a clear message, or quarantine with a reason."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custintel.core.config import CsvOptions, SourceConfig
from tests.conftest import ingest, make_project, query

HEADER = "order_id,customer_ref,order_ts,amount,currency\n"


def load_one(tmp_path: Path, name: str, content: bytes, **source: Any) -> dict[str, Any]:
    project = make_project(
        tmp_path, orders=SourceConfig(contract="orders", path=f"data/{name}", **source)
    )
    (project / "data" / name).write_bytes(content)
    summary = ingest(project)
    assert len(summary["results"]) == 1
    result = summary["results"][0]
    if result["status"] == "loaded":
        q = query(project, "SELECT count(*) FROM quarantine.rows")[0][0]
        c = query(project, "SELECT count(*) FROM clean.orders")[0][0]
        assert (c, q) == (result["rows_clean"], result["rows_quarantined"])
        assert result["rows_in"] == c + q + result["rows_duplicate"]
    result["project"] = project
    return result


def rules(result: dict[str, Any]) -> dict[str, int]:
    return result["rule_counts"]


def test_broken_quoting_goes_to_quarantine(tmp_path: Path) -> None:
    body = HEADER + 'A1,C1,2025-01-01,10,EUR\nA2,"C2,2025-01-01,10,EUR\nA3,C3,2025-01-01,10,EUR\n'
    r = load_one(tmp_path, "q.csv", body.encode())
    assert r["status"] == "loaded"
    assert r["rows_clean"] + r["rows_quarantined"] >= 2 and rules(r).get("malformed", 0) >= 1


def test_stray_quote_inside_a_field_is_malformed_not_silently_cut(tmp_path: Path) -> None:
    body = HEADER + 'A1,C1,2025-01-01,10,EUR\nA2,"C2"x,2025-01-01,10,EUR\n'
    r = load_one(tmp_path, "q.csv", body.encode())
    assert r["rows_in"] == 2 and rules(r) == {"malformed": 1}


def test_ragged_rows_are_quarantined_with_their_line(tmp_path: Path) -> None:
    body = (
        HEADER
        + "A1,C1,2025-01-01,10,EUR\nA2,C2\nA3,C3,2025-01-01,10,EUR,surplus\nA4,C4,2025-01-01,10,EUR\n"
    )
    r = load_one(tmp_path, "r.csv", body.encode())
    assert (r["rows_in"], r["rows_clean"], rules(r)) == (4, 2, {"malformed": 2})
    lines = query(r["project"], "SELECT _line, message FROM quarantine.rows ORDER BY _line")
    assert [ln for ln, _ in lines] == [3, 4]
    assert "MISSING COLUMNS" in lines[0][1] and "TOO MANY COLUMNS" in lines[1][1]
    clean_lines = query(r["project"], "SELECT order_id, _line FROM clean.orders ORDER BY _line")
    assert clean_lines == [("A1", 2), ("A4", 5)]


def test_latin1_bytes_in_a_utf8_file_are_quarantined(tmp_path: Path) -> None:
    body = (
        HEADER.encode()
        + "A1,Müller,2025-01-01,10,EUR\n".encode("latin-1")
        + b"A2,C2,2025-01-01,10,EUR\n"
    )
    r = load_one(tmp_path, "e.csv", body)
    assert r["rows_in"] == 2 and r["rows_clean"] == 1 and rules(r) == {"malformed": 1}
    assert "INVALID ENCODING" in query(r["project"], "SELECT message FROM quarantine.rows")[0][0]


def test_declared_latin1_encoding_reads_the_same_bytes(tmp_path: Path) -> None:
    body = HEADER.encode() + "A1,Müller,2025-01-01,10,EUR\n".encode("latin-1")
    r = load_one(tmp_path, "e.csv", body, csv=CsvOptions(encoding="latin-1"))
    assert r["rows_clean"] == 1
    assert query(r["project"], "SELECT customer_ref FROM clean.orders")[0][0] == "Müller"


def test_header_only_file_loads_zero_rows(tmp_path: Path) -> None:
    r = load_one(tmp_path, "h.csv", HEADER.encode())
    assert (r["status"], r["rows_in"]) == ("loaded", 0)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "the file is empty (0 bytes)"),
        ("zero.csv.gz", b"", "the file is empty (0 bytes)"),
        ("bad.csv.gz", b"\x1f\x8b\x08\x00garbage", "the gzip file is truncated or corrupt"),
        ("binary.csv", bytes(range(256)) * 40, "unprintable characters"),
        (
            "wrong.csv",
            b"id,name\n1,a\n",
            "missing required column(s) ['order_ts', 'amount', 'currency']",  # order_id may be left out
        ),
        (
            "dupe.csv",
            b"order_id,order_id,order_ts,amount,currency\n",
            "column 'order_id' appears twice",
        ),
    ],
)
def test_unreadable_files_fail_with_a_clear_message(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    r = load_one(tmp_path, name, content)
    assert r["status"] == "failed"
    assert expected in r["message"] and name in r["message"]


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    body = HEADER + "A1,C1,2025-01-01,10,EUR\n"
    r = load_one(tmp_path, "o.csv.gz", gzip.compress(body.encode()))
    assert r["rows_clean"] == 1


def test_huge_numbers_and_odd_timestamps_get_reasons(tmp_path: Path) -> None:
    rows = [
        ("A1", "2025-01-01T10:00:00+05:30", "10", "ok"),
        ("A2", "2025-01-01", "99999999999999999999999999", "type.amount"),
        ("A3", "2025-01-01", "1e400", "type.amount"),
        ("A4", "2025-01-01", "NaN", "type.amount"),
        ("A5", "0000-00-00 00:00:00", "10", "type.order_ts"),
        ("A6", "1969-12-31", "10", "range.order_ts"),
        ("A7", "9999-12-31 23:59:59", "10", "future.order_ts"),
        ("A8", "1735725600", "10", "ok"),  # epoch seconds
        ("A9", "2025-02-30", "10", "type.order_ts"),
        ("A10", "yesterday", "10", "type.order_ts"),
        ("A11", "2025-01-01", "-5", "amount.sign"),
        ("A12", "", "10", "not_null.order_ts"),
    ]
    body = HEADER + "".join(f"{o},C,{ts},{amt},EUR\n" for o, ts, amt, _ in rows)
    r = load_one(tmp_path, "odd.csv", body.encode())
    got = dict(
        query(
            r["project"],
            'SELECT regexp_extract(raw, \'"order_id":"([^"]+)"\', 1), rule FROM quarantine.rows',
        )
    )
    expected = {o: rule for o, _, _, rule in rows if rule != "ok"}
    assert got == expected
    ts = dict(query(r["project"], "SELECT order_id, order_ts FROM clean.orders"))
    assert str(ts["A1"].astimezone(__import__("datetime").UTC)) == "2025-01-01 04:30:00+00:00"
    assert ts["A8"].timestamp() == 1735725600


cell = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=12,
    ),
    st.sampled_from(
        ["", "EUR", "10.5", "-3", "2025-01-01", "1e999", '"', '""', ",", "\n", "\r\n", "NaN"]
    ),
)
record = st.lists(cell, min_size=5, max_size=5)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(record, max_size=30),
    ragged=st.lists(st.integers(min_value=1, max_value=8), max_size=4),
)
def test_counts_always_reconcile(
    tmp_path_factory: pytest.TempPathFactory, records: list[list[str]], ragged: list[int]
) -> None:
    """Any content: every record read ends up clean, quarantined or a counted duplicate."""
    tmp = tmp_path_factory.mktemp("fuzz")
    buffer = io.StringIO()
    # CRLF line ends make the csv module quote any field holding a CR or LF, so every
    # generated record is well-formed CSV and the expected record count is exact.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["order_id", "customer_ref", "order_ts", "amount", "currency"])
    writer.writerows(records)
    for n in ragged:  # unquoted lines with the wrong number of fields
        buffer.write(",".join(f"x{i}" for i in range(n if n != 5 else 6)) + "\r\n")
    r = load_one(tmp, "fuzz.csv", buffer.getvalue().encode())
    assert r["status"] == "loaded", r["message"]
    assert r["rows_in"] == len(records) + len(ragged)
    assert r["rows_in"] == r["rows_clean"] + r["rows_quarantined"] + r["rows_duplicate"]


def test_contacts_allow_waves_and_channels_and_refuse_the_future(tmp_path: Path) -> None:
    """One customer contacted by a campaign on two channels and in two waves keeps every
    contact; an exact repeat is a duplicate; a contact dated in the future is quarantined
    with its rule, and the counts reconcile."""
    body = (
        "campaign_id,customer_ref,channel,sent_at,variant,offer\n"
        "C1,A,email,2025-03-01T09:00:00Z,treatment,x\n"
        "C1,A,sms,2025-03-01T09:00:00Z,treatment,x\n"
        "C1,A,email,2025-03-08T09:00:00Z,treatment,x\n"
        "C1,A,email,2025-03-08T09:00:00Z,treatment,x\n"
        "C1,B,email,2099-01-01T09:00:00Z,control,x\n"
    )
    project = make_project(
        tmp_path, contacts=SourceConfig(contract="contacts", path="data/contacts.csv")
    )
    (project / "data" / "contacts.csv").write_text(body)
    r = ingest(project)["results"][0]
    assert (r["rows_in"], r["rows_clean"], r["rows_duplicate"]) == (5, 3, 1)
    assert rules(r) == {"future.sent_at": 1}
    assert query(project, "SELECT count(*) FROM clean.contacts WHERE customer_ref = 'A'")[0][0] == 3
