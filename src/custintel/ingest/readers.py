"""Reading inputs with DuckDB, every value as text, every record with its position.

A reader returns a :class:`Scan`: a SELECT over the input (all source columns as VARCHAR,
plus ``_ord``, the record's position) that the parser wraps, so a file is read and parsed
in one pass and never sits whole in Python memory.

CSV lines DuckDB cannot split into the header's columns (broken quoting, ragged rows,
bytes invalid in the encoding) are captured with DuckDB's ``store_rejects`` while the
scan runs; :func:`malformed_rows` then turns them into records with their line number,
so they reach quarantine instead of vanishing. JSON lines mark bad lines themselves
(``_malformed``), one record per line.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from custintel.core.config import CsvOptions, SourceConfig
from custintel.core.errors import SourceError
from custintel.core.sqltext import ident as _q
from custintel.core.sqltext import literal as _lit
from custintel.ingest import salvage
from custintel.ingest.census import TextCensus, compression_of
from custintel.ingest.files import InputFile


@dataclass(frozen=True)
class Scan:
    """A lazy read of one input.

    ``sql`` selects the source ``columns`` as text, ``_ord`` (1-based position among the
    records it yields; absent when ``numbered`` is False) and, when the reader itself detects bad records, ``_malformed``
    and ``_raw_line``. ``header_lines`` is added to ``_ord`` to give the line number.
    ``rejects`` names the DuckDB table that collects malformed CSV lines during the scan.
    ``scratch`` lists temporary objects to drop when the load is done.
    """

    sql: str
    columns: list[str]
    header_lines: int = 0
    rejects: str | None = None
    marks_malformed: bool = False
    numbered: bool = True
    """False when ``sql`` has no ``_ord``: records are then numbered in scan order."""
    scratch: tuple[str, ...] = ()
    expected: int | None = None
    """Records the census counted (DuckDB's CSV scan): parsed + rejected must equal it."""


class Miscount(SourceError):
    """DuckDB's scan yielded another number of records than the census counted."""


def check_count(duck: Any, scan: Scan, table: str, label: str) -> None:
    """Compare the records a scan put in ``table`` (plus rejected lines) with the count
    made independently of the parser; raise :class:`Miscount` (CSV: read it again
    record by record) or :class:`SourceError` (nothing to fall back on)."""
    got = duck.execute(f"SELECT count(*) FROM {_q(table)}").fetchone()[0]
    if scan.rejects is not None:
        got += duck.execute(f"SELECT count(DISTINCT line) FROM {_q(scan.rejects)}").fetchone()[0]
        if got != scan.expected:
            raise Miscount(f"{label}: {got} records read, {scan.expected} counted")
    elif got != scan.expected:
        raise SourceError(
            f"{label}: {got} rows could be read but the file declares {scan.expected}; "
            "nothing was loaded from it (a corrupt file?)"
        )


def csv_options_for(opts: CsvOptions, path: Path) -> CsvOptions:
    """The source's CSV options for one file: a ``.tsv`` file is tab-separated unless the
    source sets a delimiter itself."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] == ".tsv" and "delimiter" not in opts.model_fields_set:
        return opts.model_copy(update={"delimiter": "\t"})
    return opts


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _csv_options(opts: CsvOptions) -> str:
    nulls = ", ".join(_lit(v) for v in opts.null_values)
    return (
        f"header = {str(opts.header).lower()}, delim = {_lit(opts.delimiter)}, "
        f"quote = {_lit(opts.quote)}, escape = {_lit(opts.escape)}, encoding = {_lit(opts.encoding)}, "
        f"skip = {opts.skip_rows}, nullstr = [{nulls}], compression = {_lit(opts.compression)}, "
        f"strict_mode = {str(opts.strict).lower()}, null_padding = false, max_line_size = 16777216"
    )


def _header(duck: Any, file: InputFile, opts: CsvOptions) -> list[str]:
    """Column names from the header line (or column0.. when there is none).

    Reading the header ourselves and passing the columns to DuckDB (no sniffing) keeps
    the read deterministic: DuckDB's dialect sniffer gives up on small files whose
    ragged rows are exactly what we want to quarantine.
    """
    try:
        row = duck.execute(
            f"SELECT text FROM read_csv({_lit(str(file.path))}, columns = {{'text': 'VARCHAR'}}, "
            f"header = false, auto_detect = false, delim = '\\x1e', quote = '', escape = '', "
            f"encoding = {_lit(opts.encoding)}, compression = {_lit(opts.compression)}, "
            f"skip = {opts.skip_rows}, strict_mode = false, null_padding = true, "
            f"max_line_size = 16777216, ignore_errors = true) WHERE text IS NOT NULL LIMIT 1"
        ).fetchone()
    except Exception as exc:
        raise SourceError(f"{file.relative}: cannot be read as CSV: {first_line(exc)}") from exc
    if row is None:
        raise SourceError(
            f"{file.relative}: cannot be read as CSV: no header line found "
            "(an empty, binary or corrupt file?)"
        )
    fields = next(csv.reader([row[0]], delimiter=opts.delimiter, quotechar=opts.quote or '"'))
    if not opts.header:
        return _headerless(file, opts, len(fields))
    names = [f.strip() for f in fields]
    if opts.delimiter != "\t" and any("\t" in name for name in names):
        raise SourceError(
            f"{file.relative}: line {opts.skip_rows + 1}: the header holds tabs, not "
            f'{opts.delimiter!r}: is the file tab-separated? (set csv.delimiter: "\\t")'
        )
    if any(not ch.isprintable() for name in names for ch in name):
        raise SourceError(
            f"{file.relative}: line {opts.skip_rows + 1}: the header holds unprintable characters "
            "(a binary file, or the wrong encoding or compression?)"
        )
    if any(not n for n in names):
        raise SourceError(
            f"{file.relative}: line {opts.skip_rows + 1}: the header has an empty column name"
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SourceError(
                f"{file.relative}: line {opts.skip_rows + 1}: column {name!r} appears twice in the header"
            )
        seen.add(name)
    return names


def _headerless(file: InputFile, opts: CsvOptions, fields: int) -> list[str]:
    """Names of a file without a header: ``csv.column_names``, or column0, column1, ..."""
    if opts.column_names is None:
        return [f"column{i}" for i in range(fields)]
    if len(opts.column_names) != fields:
        raise SourceError(
            f"{file.relative}: line {opts.skip_rows + 1} has {fields} fields but "
            f"csv.column_names names {len(opts.column_names)}"
        )
    return list(opts.column_names)


def read_whitespace(
    duck: Any, file: InputFile, opts: CsvOptions, name: str, census: TextCensus
) -> Scan:
    """A file whose fields are separated by runs of blanks (``csv.delimiter: whitespace``,
    the layout of many published data sets and fixed-width exports): each line is split
    on whitespace after trimming; a line with another number of fields than the first is
    one malformed record. DuckDB's CSV reader takes one delimiter character, so lines are
    read as text (the JSON-lines reader) and split in SQL."""
    if file.size_bytes == 0:
        raise SourceError(f"{file.relative}: the file is empty (0 bytes)")
    tally = salvage.Tally()
    batches = salvage.jsonl_batches(
        file.path,
        compression_of(file.path, opts.compression),
        file.relative,
        opts.encoding,
        tally,
        kind="delimited",
    )
    raw = _collect(duck, file, name, salvage.jsonl_schema(), batches)
    _account(file, tally, census)
    lines = f"{name}__lines"
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE {_q(lines)} AS SELECT text, _ord, _encoding, "
        f"regexp_split_to_array(regexp_replace(text, '^\\s+|\\s+$', '', 'g'), '\\s+') "
        f"AS parts FROM {_q(raw)} "
        f"WHERE _ord > {opts.skip_rows}"
    )
    duck.execute(f"DROP TABLE {_q(raw)}")
    first = duck.execute(
        f"SELECT _ord, parts FROM {_q(lines)} WHERE _encoding IS NULL ORDER BY _ord LIMIT 1"
    ).fetchone()
    if first is None:
        raise SourceError(f"{file.relative}: no line to read")
    if opts.header:
        names = [str(p) for p in first[1]]
        if len(set(names)) != len(names):
            raise SourceError(f"{file.relative}: line {first[0]}: a column name appears twice")
        duck.execute(f"DELETE FROM {_q(lines)} WHERE _ord = {int(first[0])}")
    else:
        names = _headerless(file, opts, len(first[1]))
    nulls = ", ".join(_lit(v) for v in opts.null_values) or "''"
    cols = "".join(
        f"CASE WHEN _malformed IS NULL AND parts[{i + 1}] NOT IN ({nulls}) "
        f"THEN parts[{i + 1}] END AS {_q(n)}, "
        for i, n in enumerate(names)
    )
    n = len(names)
    sql = (
        f"SELECT {cols}_ord, _malformed, CASE WHEN _malformed IS NOT NULL THEN text END "
        f"AS _raw_line FROM (SELECT *, CASE WHEN _encoding IS NOT NULL THEN _encoding "
        f"WHEN len(parts) <> {n} THEN 'WRONG NUMBER OF FIELDS: expected {n}, found ' "
        f"|| len(parts) END AS _malformed FROM {_q(lines)})"
    )
    return Scan(sql, names, marks_malformed=True, scratch=(lines,))


def read_csv(
    duck: Any, file: InputFile, opts: CsvOptions, name: str, names: list[str], expected: int
) -> Scan:
    """A scan of a regular delimited file (one record per line, as the census found);
    malformed lines land in ``<name>__rejects``. The loader compares the records it
    yields plus the rejected lines with ``expected`` and reads the file with
    :func:`salvage_csv` when they differ."""
    spec = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
    rejects, scans = f"{name}__rejects", f"{name}__scans"
    # No row_number() here: a window over the whole file would stop DuckDB from parsing in
    # parallel. The loader numbers records by the rowid of the table the scan fills.
    sql = (
        f"SELECT * FROM read_csv({_lit(str(file.path))}, "
        f"{_csv_options(opts)}, columns = {spec}, auto_detect = false, "
        f"store_rejects = true, rejects_table = {_lit(rejects)}, rejects_scan = {_lit(scans)})"
    )
    header_lines = opts.skip_rows + (1 if opts.header else 0)
    return Scan(
        sql,
        names,
        header_lines,
        rejects=rejects,
        numbered=False,
        scratch=(rejects, scans),
        expected=expected,
    )


def csv_names(duck: Any, file: InputFile, opts: CsvOptions) -> list[str]:
    """The header's column names (checked), or column0.. without a header."""
    if file.size_bytes == 0:
        raise SourceError(f"{file.relative}: the file is empty (0 bytes), not even a header")
    return _header(duck, file, opts)


def _arrow_table(duck: Any, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> str:
    """Copy Arrow batches into a DuckDB temp table; errors raised while reading propagate."""
    reader = pa.RecordBatchReader.from_batches(schema, batches)
    view, table = f"{name}__arrow", f"{name}__rows"
    duck.register(view, reader)
    try:
        duck.execute(f"CREATE OR REPLACE TEMP TABLE {_q(table)} AS SELECT * FROM {_q(view)}")
    finally:
        duck.unregister(view)
    return table


def salvage_csv(
    duck: Any, file: InputFile, opts: CsvOptions, name: str, names: list[str], census: TextCensus
) -> Scan:
    """A delimited file read record by record in Python (:mod:`custintel.ingest.salvage`):
    records that span lines, blank lines, and broken records that cost only their first
    line. Every physical line must be accounted for, or the file fails."""
    tally = salvage.Tally()
    batches = salvage.csv_batches(
        file.path, compression_of(file.path, opts.compression), file.relative, opts, names, tally
    )
    table = _collect(duck, file, name, salvage.csv_schema(names), batches)
    _account(file, tally, census)
    return Scan(f"SELECT * FROM {_q(table)}", names, 0, marks_malformed=True, scratch=(table,))


def _collect(
    duck: Any, file: InputFile, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]
) -> str:
    try:
        return _arrow_table(duck, name, schema, batches)
    except duckdb.Error as exc:
        # An error raised while DuckDB pulled the batches arrives wrapped: unwrap ours.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, SourceError):
            raise cause from None
        raise SourceError(f"{file.relative}: cannot be read: {first_line(exc)}") from exc


def _account(file: InputFile, tally: salvage.Tally, census: TextCensus) -> None:
    """Refuse a file whose lines the reader did not all account for."""
    if tally.lines != census.lines:
        raise SourceError(
            f"{file.relative}: the reader accounted for {tally.lines} lines but the file holds "
            f"{census.lines}; nothing was loaded from it"
        )


def csv_error(file: InputFile, exc: Exception) -> SourceError:
    """The message for a CSV DuckDB cannot read at all."""
    hint = ""
    if "state machine" in str(exc):
        hint = (
            " (the file mixes line endings or is not CSV in this dialect; fix the export, or "
            "set csv.strict: false to read it leniently, where surplus fields are dropped)"
        )
    return SourceError(f"{file.relative}: cannot be read as CSV: {first_line(exc)}{hint}")


def malformed_rows(duck: Any, scan: Scan) -> str | None:
    """After the scan ran: a SELECT of its malformed lines, one record per line, or None.

    Columns: ``_line``, ``_j`` (1-based rank among malformed lines), ``_before`` (how
    many good records precede it), ``_malformed`` (DuckDB's first error) and
    ``_raw_line``. DuckDB logs one error per missing column, so errors are grouped.
    """
    if scan.rejects is None:
        return None
    found = duck.execute(f"SELECT count(*) FROM {_q(scan.rejects)}").fetchone()[0]
    if not found:
        return None
    return (
        f"SELECT _line, _j, _line - {scan.header_lines} - _j AS _before, _malformed, _raw_line FROM ("
        f"SELECT line::BIGINT AS _line, row_number() OVER (ORDER BY line) AS _j, "
        f"arg_min(error_type::VARCHAR || ': ' || coalesce(error_message, ''), coalesce(column_idx, 0)) "
        f"AS _malformed, any_value(trim(csv_line, chr(10) || chr(13))) AS _raw_line "
        f"FROM {_q(scan.rejects)} GROUP BY line)"
    )


def _float_text(column: str) -> str:
    """A binary float as text, rounded to 4 decimals: floats hold few decimal fractions
    exactly (19.99 * 3 is 59.97000000000001), and the documented rule is that money and
    numbers stored as floats are read at the 4 decimals the warehouse keeps."""
    return f"round({column}, 4)::VARCHAR"


def float_text(value: float) -> str:
    """The same rule for a float that arrives in Python (SQLite REAL)."""
    return str(round(value, 4))


def read_parquet(duck: Any, file: InputFile, name: str) -> Scan:
    path = _lit(str(file.path))
    try:
        described = duck.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()
    except duckdb.Error as exc:
        raise SourceError(f"{file.relative}: cannot be read as Parquet: {first_line(exc)}") from exc
    try:
        declared = pq.ParquetFile(file.path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{file.relative}: cannot be read as Parquet: {exc}") from exc
    columns = [row[0] for row in described]
    cols = ", ".join(
        f"{_float_text(_q(c)) if t in ('DOUBLE', 'FLOAT') else _q(c) + '::VARCHAR'} AS {_q(c)}"
        for c, t in ((row[0], row[1]) for row in described)
    )
    sql = f"SELECT {cols}, file_row_number + 1 AS _ord FROM read_parquet({path}, file_row_number = true)"
    return Scan(sql, columns, expected=declared)


def read_jsonl(duck: Any, file: InputFile, name: str, encoding: str, census: TextCensus) -> Scan:
    """JSON lines: each line is parsed on its own, so one bad line (not JSON, not an object,
    bytes invalid in the encoding) is one quarantined record."""
    if file.size_bytes == 0:
        raise SourceError(f"{file.relative}: the file is empty (0 bytes)")
    tally = salvage.Tally()
    batches = salvage.jsonl_batches(
        file.path, compression_of(file.path, "auto"), file.relative, encoding, tally
    )
    raw = _collect(duck, file, name, salvage.jsonl_schema(), batches)
    _account(file, tally, census)
    lines = f"{name}__lines"
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE {_q(lines)} AS SELECT text, _ord, "
        "CASE WHEN _encoding IS NOT NULL THEN _encoding "
        "WHEN NOT coalesce(json_valid(text), false) THEN 'INVALID JSON: not a valid JSON value' "
        "WHEN json_type(text::JSON) != 'OBJECT' THEN 'INVALID JSON: the line is not a JSON object' "
        f"END AS _malformed FROM {_q(raw)}"
    )
    duck.execute(f"DROP TABLE {_q(raw)}")
    keys = [
        row[0]
        for row in duck.execute(
            f"SELECT k FROM (SELECT unnest(json_keys(text::JSON)) AS k, _ord FROM {_q(lines)} "
            "WHERE _malformed IS NULL) GROUP BY k ORDER BY min(_ord), k"
        ).fetchall()
    ]
    paths = [_lit('$."' + k.replace('"', '\\"') + '"') for k in keys]
    cols = "".join(
        f"CASE WHEN _malformed IS NULL THEN json_extract_string(text::JSON, {path}) END AS {_q(k)}, "
        for k, path in zip(keys, paths, strict=True)
    )
    sql = (
        f"SELECT {cols}_ord, _malformed, CASE WHEN _malformed IS NOT NULL THEN text END "
        f"AS _raw_line FROM {_q(lines)}"
    )
    return Scan(sql, keys, marks_malformed=True, scratch=(lines,))


def _sql_batches(
    path: Path, statement: str, batch_rows: int
) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    # DuckDB pulls the batches on its own thread; the connection is used by one thread at a time.
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        cursor = db.execute(statement)
    except sqlite3.Error as exc:
        db.close()
        raise SourceError(f"{path}: query failed: {exc}") from exc
    names = [d[0] for d in cursor.description]
    schema = pa.schema([(n, pa.string()) for n in names])

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            while rows := cursor.fetchmany(batch_rows):
                columns = list(zip(*rows, strict=True))
                arrays = [
                    pa.array(
                        [
                            None if v is None else float_text(v) if isinstance(v, float) else str(v)
                            for v in col
                        ],
                        pa.string(),
                    )
                    for col in columns
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        finally:
            db.close()

    return names, batches()


def read_sql(duck: Any, source: SourceConfig, project_dir: Path, name: str) -> Scan:
    """Copy a SQLite table or query into DuckDB in batches (all values as text).

    Unlike files, a query result is copied first: its content fingerprint decides
    whether it changed since the last load.
    """
    assert source.sql is not None
    path = Path(source.sql.url.removeprefix("sqlite:///"))
    path = path if path.is_absolute() else project_dir / path
    if not path.is_file():
        raise SourceError(f"{source.sql.url}: database file not found")
    names, batches = _sql_batches(path, source.sql.statement(), source.sql.batch_rows)
    reader = pa.RecordBatchReader.from_batches(
        pa.schema([(n, pa.string()) for n in names]), batches
    )
    view, table = f"{name}__arrow", f"{name}__rows"
    duck.register(view, reader)
    try:
        duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {_q(table)} AS "
            f"SELECT *, row_number() OVER () AS _ord FROM {_q(view)}"
        )
    except duckdb.Error as exc:
        raise SourceError(f"{source.sql.url}: reading the query failed: {first_line(exc)}") from exc
    finally:
        duck.unregister(view)
    return Scan(f"SELECT * FROM {_q(table)}", names, scratch=(table,))


def sql_fingerprint(duck: Any, scan: Scan) -> str:
    """An order-independent content hash of a query's rows (a query has no file sha256)."""
    if not scan.columns:
        return "empty"
    packed = ", ".join(f"coalesce({_q(c)}, '\\0')" for c in scan.columns)
    value = duck.execute(
        f"SELECT count(*), coalesce(sum(hash(concat_ws('|', {packed}))::HUGEINT), 0) "
        f"FROM ({scan.sql})"
    ).fetchone()
    return f"rows{value[0]}-{int(value[1]) % 2**64:016x}"
