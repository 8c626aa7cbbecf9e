"""Property: whatever the corruption, every line of a file is accounted for.

Hypothesis writes files from valid order rows plus random corruptions (a quote opened and
never closed, text after a closing quote, a field too many or too few, bytes invalid in
UTF-8, blank lines, CRLF line ends, fields quoted because they hold commas, quotes or
newlines, gzip whole or cut short) and loads them through the real ingest into a real
DuckDB file. For every file: rows written = clean + quarantined + duplicates, every valid
row is clean with its values and line, every corrupted line is quarantined as malformed
on its own line, repeated rows are duplicates, and a cut-short gzip fails whole.

Each example loads a batch of files in one run; 40 examples of 25 files make 1,000 files.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custintel.core.config import SourceConfig
from tests.conftest import ingest, make_project, query

HEADER = ["order_id", "customer_ref", "order_ts", "amount", "currency"]
FILES_PER_EXAMPLE = 25
EXAMPLES = int(os.environ.get("CUSTINTEL_PROPERTY_EXAMPLES", 15))  # 40+ for a longer search

# Values start and end with a letter: the loader trims spaces, and a field that began
# with a delimiter could close an earlier stray quote into a valid record (which is
# what CSV says it is), so the truth would be ambiguous.
inner = st.text(alphabet='abcXYZ019 ,"\né', max_size=8)
ref = st.builds(
    lambda a, mid, b: a + mid + b, st.sampled_from("CDE"), inner, st.sampled_from("xyz")
)

CORRUPTIONS = ("stray_quote", "after_quote", "extra_field", "missing_field", "bad_bytes")


@dataclass
class Spec:
    rows: list[tuple[str, str]]  # (customer_ref, amount) of valid rows
    repeats: list[int]  # indexes of valid rows written again later (duplicates)
    corrupt: list[tuple[int, str]]  # (position among records, kind)
    blanks: list[int]  # positions after which a blank line goes
    crlf: bool
    packing: str  # plain | gzip | gzip_cut


spec = st.builds(
    Spec,
    rows=st.lists(
        st.tuples(ref, st.decimals(min_value=1, max_value=9999, places=2).map(str)), max_size=12
    ),
    repeats=st.lists(st.integers(0, 11), max_size=2),
    corrupt=st.lists(st.tuples(st.integers(0, 14), st.sampled_from(CORRUPTIONS)), max_size=3),
    blanks=st.lists(st.integers(0, 14), max_size=2),
    crlf=st.booleans(),
    packing=st.sampled_from(["plain", "plain", "plain", "gzip", "gzip_cut"]),
)


@dataclass
class Truth:
    name: str
    fails: bool
    clean: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (ref, line)
    malformed: set[int] = field(default_factory=set)
    duplicates: int = 0
    records: int = 0


def _corrupt_line(kind: str, oid: str) -> bytes:
    return {
        "stray_quote": f'{oid},"C open,2025-01-01,10.00,EUR',
        "after_quote": f'{oid},"C"x,2025-01-01,10.00,EUR',
        "extra_field": f"{oid},C,2025-01-01,10.00,EUR,surplus",
        "missing_field": f"{oid},C,2025-01-01",
    }.get(kind, "").encode() or f"{oid},M\xfcller,2025-01-01,10.00,EUR".encode("latin-1")


def write_file(folder: Path, index: int, s: Spec) -> Truth:
    name = f"f{index:03d}.csv" + (".gz" if s.packing != "plain" else "")
    truth = Truth(name=f"data/{name}", fails=s.packing == "gzip_cut")
    end = b"\r\n" if s.crlf else b"\n"
    records: list[tuple[str, bytes, Any]] = []  # (kind, bytes without line end, payload)
    for i, (customer, amount) in enumerate(s.rows):
        oid = f"F{index}R{i}"
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(
            [oid, customer, f"2025-01-{1 + i % 28:02d}", amount, "EUR"]
        )
        # "\n" as the terminator makes the writer quote values that hold a newline
        records.append(("valid", buffer.getvalue()[:-1].encode(), (oid, customer)))
    for r in s.repeats:
        if r < len(s.rows):
            records.append(("repeat", records[r][1], None))
    for position, kind in sorted(s.corrupt):
        records.insert(
            min(position, len(records)), (kind, _corrupt_line(kind, f"F{index}X{position}"), None)
        )
    lines = [",".join(HEADER).encode()]
    line_no = 2
    for position, (kind, raw, payload) in enumerate(records):
        truth.records += 1
        if kind == "valid":
            oid, customer = payload
            truth.clean[oid] = (customer.replace("\n", end.decode()), line_no)
        elif kind == "repeat":
            truth.duplicates += 1
        else:
            truth.malformed.add(line_no)
        # a quoted newline inside a value is a line of its own in the file
        raw = raw.replace(b"\n", end)
        lines.append(raw)
        line_no += raw.count(b"\n") + 1
        for _ in range(s.blanks.count(position)):
            lines.append(b"")
            line_no += 1
    body = end.join(lines) + end
    if s.packing != "plain":
        body = gzip.compress(body, mtime=0)
        if s.packing == "gzip_cut":
            body = body[: max(len(body) * 2 // 3, 1)]
    (folder / name).write_bytes(body)
    return truth


def rows(project: Path, sql: str, table: str) -> list[tuple[Any, ...]]:
    """The rows of a query, or none when no load has created ``table`` yet."""
    schema, name = table.split(".")
    there = query(
        project,
        f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}' "
        f"AND table_name = '{name}'",
    )
    return query(project, sql) if there[0][0] else []


def check(project: Path, summary: dict[str, Any], truths: list[Truth]) -> None:
    results = {r["file"]: r for r in summary["results"]}
    clean = {}
    for oid, customer, line, file in rows(
        project, "SELECT order_id, customer_ref, _line, _file FROM clean.orders", "clean.orders"
    ):
        clean.setdefault(file, {})[oid] = (customer, line)
    quarantined: dict[str, list[tuple[int, str]]] = {}
    for line, rule, file in rows(
        project, "SELECT _line, rule, _file FROM quarantine.rows", "quarantine.rows"
    ):
        quarantined.setdefault(file, []).append((line, rule))
    for t in truths:
        r = results[t.name]
        if t.fails:
            assert r["status"] == "failed", r
            assert t.name not in clean and t.name not in quarantined
            continue
        assert r["status"] == "loaded", r
        assert r["rows_in"] == t.records, (t, r)
        assert r["rows_in"] == r["rows_clean"] + r["rows_quarantined"] + r["rows_duplicate"]
        assert r["rows_duplicate"] == t.duplicates, (t, r)
        assert clean.get(t.name, {}) == t.clean, (t.name, clean.get(t.name), t.clean)
        got = sorted(quarantined.get(t.name, []))
        assert got == sorted((line, "malformed") for line in t.malformed), (t.name, got, t)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(specs=st.lists(spec, min_size=FILES_PER_EXAMPLE, max_size=FILES_PER_EXAMPLE))
def test_every_line_of_every_file_is_accounted_for(
    tmp_path_factory: Any, specs: list[Spec]
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    project = make_project(tmp, orders=SourceConfig(contract="orders", path="data/*"))
    truths = [write_file(project / "data", i, s) for i, s in enumerate(specs)]
    summary = ingest(project)
    check(project, summary, truths)
