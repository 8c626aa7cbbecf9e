"""Reading inputs into DuckDB, every value as text, every record with its line number.

Files stream through DuckDB's readers and never sit whole in Python memory. CSV lines
DuckDB cannot split into the header's columns (broken quoting, ragged rows, invalid
UTF-8) are captured with DuckDB's ``store_rejects`` and come back as *malformed* records,
so they reach quarantine with their line number instead of vanishing.

Each reader leaves a temporary table ``<name>`` with the source's own columns (all
VARCHAR), ``_line`` (line in the file, header = 1), and ``_malformed`` (why the line
could not be read, else NULL; the raw line is then in ``_raw_line``).
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

from custintel.core.config import CsvOptions, SourceConfig
from custintel.core.errors import SourceError
from custintel.ingest.files import InputFile


@dataclass(frozen=True)
class RawRead:
    """What a reader left behind: the temp table, its source columns and record counts."""

    table: str
    columns: list[str]
    records: int
    malformed: int
    scratch: tuple[str, ...] = ()
    """Temporary tables and views behind ``table``: drop them when the load is done."""


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _finish(
    duck: Any, table: str, body: str, *, view: bool = False, scratch: tuple[str, ...] = ()
) -> RawRead:
    kind = "VIEW" if view else "TABLE"
    duck.execute(f"CREATE OR REPLACE TEMP {kind} {_q(table)} AS {body}")
    columns = [
        row[0]
        for row in duck.execute(f"DESCRIBE {_q(table)}").fetchall()
        if row[0] not in ("_line", "_malformed", "_raw_line")
    ]
    records, malformed = duck.execute(
        f"SELECT count(*), count(_malformed) FROM {_q(table)}"
    ).fetchone()
    return RawRead(table, columns, int(records), int(malformed), (table, *scratch))


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
        raise SourceError(f"{file.relative}: cannot be read as CSV: {_first_line(exc)}") from exc
    if row is None:
        raise SourceError(
            f"{file.relative}: cannot be read as CSV: no header line found "
            "(an empty, binary or corrupt file?)"
        )
    fields = next(csv.reader([row[0]], delimiter=opts.delimiter, quotechar=opts.quote or '"'))
    if not opts.header:
        return [f"column{i}" for i in range(len(fields))]
    names = [f.strip() for f in fields]
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


def read_csv(duck: Any, file: InputFile, opts: CsvOptions, table: str) -> RawRead:
    """Read a delimited file; malformed lines become records with ``_malformed`` set."""
    if file.size_bytes == 0:
        raise SourceError(f"{file.relative}: the file is empty (0 bytes), not even a header")
    names = _header(duck, file, opts)
    spec = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
    rejects, scans = f"{table}__rejects", f"{table}__scans"
    duck.execute(f"DROP TABLE IF EXISTS {_q(rejects)}; DROP TABLE IF EXISTS {_q(scans)}")
    try:
        duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {_q(table + '__ok')} AS "
            f"SELECT *, row_number() OVER () AS _ord FROM read_csv({_lit(str(file.path))}, "
            f"{_csv_options(opts)}, columns = {spec}, auto_detect = false, "
            f"store_rejects = true, rejects_table = {_lit(rejects)}, rejects_scan = {_lit(scans)})"
        )
    except Exception as exc:  # DuckDB raises many error types for unreadable files
        hint = ""
        if "state machine" in str(exc):
            hint = (
                " (the file mixes line endings or is not CSV in this dialect; fix the export, or "
                "set csv.strict: false to read it leniently, where surplus fields are dropped)"
            )
        raise SourceError(
            f"{file.relative}: cannot be read as CSV: {_first_line(exc)}{hint}"
        ) from exc
    header_lines = opts.skip_rows + (1 if opts.header else 0)
    # DuckDB logs one error per missing column; keep one record per line, first error.
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE {_q(table + '__bad')} AS "
        f"SELECT line::BIGINT AS _line, arg_min(error_type::VARCHAR || ': ' || "
        f"coalesce(error_message, ''), coalesce(column_idx, 0)) AS _malformed, "
        f"any_value(trim(csv_line, chr(10) || chr(13))) AS _raw_line, "
        f"row_number() OVER (ORDER BY line) AS _j FROM {_q(rejects)} GROUP BY line"
    )
    columns = [
        row[0]
        for row in duck.execute(f"DESCRIBE {_q(table + '__ok')}").fetchall()
        if row[0] != "_ord"
    ]
    select_cols = ", ".join(f"ok.{_q(c)}" for c in columns)
    null_cols = ", ".join(f"NULL::VARCHAR AS {_q(c)}" for c in columns)
    # The accepted rows come in file order; the i-th accepted row sits on line
    # header + i + (number of malformed lines before it). Malformed line j is preceded
    # by (line_j - header - j) accepted rows, so an as-of join finds that count (with
    # several malformed lines in a row, the last of them).
    body = (
        f"WITH bad AS (SELECT _line - {header_lines} - _j AS _before, max(_j) AS _j FROM "
        f"{_q(table + '__bad')} GROUP BY _before) "
        f"SELECT {select_cols}, ok._ord + {header_lines} + coalesce(bad._j, 0) AS _line, "
        f"NULL::VARCHAR AS _malformed, NULL::VARCHAR AS _raw_line "
        f"FROM {_q(table + '__ok')} ok ASOF LEFT JOIN bad ON ok._ord > bad._before "
        f"UNION ALL BY NAME SELECT {null_cols + ', ' if columns else ''}_line, _malformed, _raw_line "
        f"FROM {_q(table + '__bad')}"
    )
    duck.execute(f"DROP TABLE IF EXISTS {_q(rejects)}; DROP TABLE IF EXISTS {_q(scans)}")
    # A view, not a copy: the parser reads through it in the same pass.
    return _finish(duck, table, body, view=True, scratch=(table + "__ok", table + "__bad"))


def read_parquet(duck: Any, file: InputFile, table: str) -> RawRead:
    try:
        body = (
            f"SELECT COLUMNS(c -> c != 'file_row_number')::VARCHAR, file_row_number + 1 AS _line, "
            f"NULL::VARCHAR AS _malformed, NULL::VARCHAR AS _raw_line FROM "
            f"read_parquet({_lit(str(file.path))}, file_row_number = true)"
        )
        return _finish(duck, table, body)
    except Exception as exc:
        raise SourceError(
            f"{file.relative}: cannot be read as Parquet: {_first_line(exc)}"
        ) from exc


def read_jsonl(duck: Any, file: InputFile, table: str) -> RawRead:
    """JSON lines: each line is parsed on its own, so one bad line is one quarantined record."""
    if file.size_bytes == 0:
        raise SourceError(f"{file.relative}: the file is empty (0 bytes)")
    lines = f"{table}__lines"
    try:
        duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {_q(lines)} AS SELECT text, row_number() OVER () AS _line "
            f"FROM read_csv({_lit(str(file.path))}, columns = {{'text': 'VARCHAR'}}, header = false, "
            "delim = '\\x1e', quote = '', escape = '', strict_mode = false, null_padding = true, "
            "max_line_size = 16777216)"
        )
    except Exception as exc:
        raise SourceError(
            f"{file.relative}: cannot be read as JSON lines: {_first_line(exc)}"
        ) from exc
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE {_q(lines + '2')} AS SELECT *, "
        "CASE WHEN NOT coalesce(json_valid(text), false) THEN 'INVALID JSON: not a valid JSON value' "
        "WHEN json_type(text::JSON) != 'OBJECT' THEN 'INVALID JSON: the line is not a JSON object' "
        f"END AS _malformed FROM {_q(lines)} WHERE text IS NOT NULL AND trim(text) != ''"
    )
    keys = [
        row[0]
        for row in duck.execute(
            f"SELECT k FROM (SELECT unnest(json_keys(text::JSON)) AS k, _line FROM {_q(lines + '2')} "
            "WHERE _malformed IS NULL) GROUP BY k ORDER BY min(_line), k"
        ).fetchall()
    ]
    paths = [_lit('$."' + k.replace('"', '\\"') + '"') for k in keys]
    cols = "".join(
        f"CASE WHEN _malformed IS NULL THEN json_extract_string(text::JSON, {path}) END AS {_q(k)}, "
        for k, path in zip(keys, paths, strict=True)
    )
    body = (
        f"SELECT {cols}_line, _malformed, CASE WHEN _malformed IS NOT NULL THEN text END AS _raw_line "
        f"FROM {_q(lines + '2')}"
    )
    result = _finish(duck, table, body)
    duck.execute(f"DROP TABLE IF EXISTS {_q(lines)}; DROP TABLE IF EXISTS {_q(lines + '2')}")
    return result


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
                    pa.array([None if v is None else str(v) for v in col], pa.string())
                    for col in columns
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        finally:
            db.close()

    return names, batches()


def read_sql(duck: Any, source: SourceConfig, project_dir: Path, table: str) -> RawRead:
    """Stream a SQLite table or query into DuckDB in batches (all values as text)."""
    assert source.sql is not None
    path = Path(source.sql.url.removeprefix("sqlite:///"))
    path = path if path.is_absolute() else project_dir / path
    if not path.is_file():
        raise SourceError(f"{source.sql.url}: database file not found")
    names, batches = _sql_batches(path, source.sql.statement(), source.sql.batch_rows)
    reader = pa.RecordBatchReader.from_batches(
        pa.schema([(n, pa.string()) for n in names]), batches
    )
    view = f"{table}__arrow"
    duck.register(view, reader)
    try:
        body = (
            f"SELECT *, row_number() OVER () AS _line, NULL::VARCHAR AS _malformed, "
            f"NULL::VARCHAR AS _raw_line FROM {_q(view)}"
        )
        return _finish(duck, table, body)
    except duckdb.Error as exc:
        raise SourceError(
            f"{source.sql.url}: reading the query failed: {_first_line(exc)}"
        ) from exc
    finally:
        duck.unregister(view)


def sql_fingerprint(duck: Any, table: str, columns: list[str]) -> str:
    """An order-independent content hash of a query's rows (a query has no file sha256)."""
    if not columns:
        return "empty"
    packed = ", ".join(f"coalesce({_q(c)}, '\\0')" for c in columns)
    value = duck.execute(
        f"SELECT count(*), coalesce(sum(hash(concat_ws('|', {packed}))::HUGEINT), 0) FROM {_q(table)}"
    ).fetchone()
    return f"rows{value[0]}-{int(value[1]) % 2**64:016x}"
