"""Reading a text file line by line, so that one broken line never takes others with it.

DuckDB's CSV reader is fast and used whenever the census (:mod:`custintel.ingest.census`)
shows a regular file: one record per line. When a file has records that span lines,
blank lines, a quote left open, or when DuckDB's count disagrees with the census, the file
is read here instead, with Python's ``csv`` module (strict, RFC 4180) record by record:

- a record may span lines only while a quoted field is open; if such a record then fails
  (a quote that never closes, a closing quote followed by text, the wrong number of
  fields, undecodable bytes), only its *first* line is quarantined and reading restarts
  on the line after it, so the lines an unclosed quote swallowed are read as records;
- a line whose bytes are invalid in the encoding is quarantined alone;
- every physical line is accounted for (header, blank, a record's lines, a quarantined
  line), and the loader checks the total against the census.

The same line-by-line reading serves JSON lines, where every line is one record.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from custintel.core.config import CsvOptions
from custintel.ingest.census import CHUNK, line_encoding, open_bytes

BATCH = 50_000
MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A record longer than this is a quote left open (DuckDB's max_line_size, the same)."""
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))


def physical_lines(
    path: Path, compression: str, label: str, encoding: str = "utf-8"
) -> Iterator[bytes]:
    """The file's lines as bytes, without their ``\\n`` (a ``\\r`` before it is kept);
    UTF-16 arrives transcoded to UTF-8 (see :func:`~custintel.ingest.census.open_bytes`)."""
    rest = b""
    with open_bytes(path, compression, label, encoding) as handle:
        while chunk := handle.read(CHUNK):
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            yield from parts
    if rest:
        yield rest


@dataclass
class Tally:
    """How the physical lines of a file were used; ``lines`` must equal the census."""

    lines: int = 0
    header: int = 0
    blank: int = 0
    records: int = 0
    malformed: int = 0


class _Broken(Exception):
    """A record cannot be completed (bytes invalid, or a quote open for too long)."""


class _Feeder:
    """Decoded lines for ``csv.reader``, remembering which physical lines each record took,
    with lines pushed back when a broken record's later lines must be read again."""

    def __init__(self, lines: Iterator[bytes], encoding: str, first: int) -> None:
        self.lines = lines
        self.encoding = encoding
        self.next_no = first
        self.pending: deque[tuple[int, bytes]] = deque()
        self.taken: list[tuple[int, bytes]] = []
        self.size = 0

    def mark(self) -> None:
        self.taken = []
        self.size = 0

    def replay(self, lines: list[tuple[int, bytes]]) -> None:
        self.pending.extendleft(reversed(lines))

    def __iter__(self) -> _Feeder:
        return self

    def __next__(self) -> str:
        if self.pending:
            no, raw = self.pending.popleft()
        else:
            raw = next(self.lines)
            no = self.next_no
            self.next_no += 1
        self.taken.append((no, raw))
        self.size += len(raw)
        if self.size > MAX_RECORD_BYTES:
            raise _Broken(
                "UNTERMINATED QUOTE: a quoted field opened on this line is still open "
                f"after {MAX_RECORD_BYTES // (1024 * 1024)} MB"
            )
        try:
            return raw.decode(self.encoding) + "\n"
        except UnicodeDecodeError as exc:
            where = "" if len(self.taken) == 1 else f" (in line {no}, inside this record)"
            raise _Broken(
                f"INVALID ENCODING: bytes {raw[exc.start : exc.start + 4]!r} are not valid "
                f"{self.encoding}{where}"
            ) from None


def _shown(raw: bytes, encoding: str) -> str:
    return raw.decode(encoding, errors="backslashreplace").rstrip("\r")


def _csv_message(exc: csv.Error) -> str:
    text = str(exc)
    if "end of data" in text or "field larger" in text:
        return "UNTERMINATED QUOTE: a quoted field opened on this line is never closed"
    if "expected after" in text:
        return f"UNQUOTED VALUE: text after a closing quote ({text})"
    return f"QUOTING: {text}"


def _skip_preamble(feeder: _Feeder, opts: CsvOptions, tally: Tally) -> None:
    """Skip ``skip_rows`` lines, blank lines, then the header line (as DuckDB does)."""
    for _ in range(opts.skip_rows):
        if next(feeder.lines, None) is None:
            return
        feeder.next_no += 1
        tally.header += 1
    if not opts.header:
        return
    for raw in feeder.lines:
        feeder.next_no += 1
        if raw.strip(b"\r") == b"":
            tally.blank += 1
            continue
        tally.header += 1
        return


def csv_batches(
    path: Path,
    compression: str,
    label: str,
    opts: CsvOptions,
    names: list[str],
    tally: Tally,
) -> Iterator[pa.RecordBatch]:
    """Records of a delimited file as Arrow batches of text: the source columns, ``_ord``
    (the record's first physical line), ``_malformed`` and ``_raw_line``."""
    encoding = line_encoding(opts.encoding)
    feeder = _Feeder(physical_lines(path, compression, label, opts.encoding), encoding, 1)
    _skip_preamble(feeder, opts, tally)
    dialect = {
        "delimiter": opts.delimiter,
        "quotechar": opts.quote or None,
        "quoting": csv.QUOTE_MINIMAL if opts.quote else csv.QUOTE_NONE,
        "strict": True,
        "doublequote": opts.escape == opts.quote,
        "escapechar": None if opts.escape in ("", opts.quote) else opts.escape,
    }
    width = len(names)
    nulls = set(opts.null_values)
    schema = csv_schema(names)
    rows: list[list[str | None]] = []
    ords: list[int] = []
    bad: list[tuple[int, str, str]] = []  # (line, message, raw)

    def flush() -> Iterator[pa.RecordBatch]:
        if rows:
            columns = [pa.array(c, pa.string()) for c in zip(*rows, strict=True)]
            n = len(ords)
            yield pa.RecordBatch.from_arrays(
                [
                    *columns,
                    pa.array(ords, pa.int64()),
                    pa.nulls(n, pa.string()),
                    pa.nulls(n, pa.string()),
                ],
                schema=schema,
            )
        if bad:
            yield pa.RecordBatch.from_arrays(
                [pa.nulls(len(bad), pa.string()) for _ in names]
                + [
                    pa.array([b[0] for b in bad], pa.int64()),
                    pa.array([b[1] for b in bad], pa.string()),
                    pa.array([b[2] for b in bad], pa.string()),
                ],
                schema=schema,
            )

    def refuse(message: str) -> None:
        no, raw = feeder.taken[0]
        bad.append((no, message, _shown(raw, encoding)))
        tally.malformed += 1
        if len(feeder.taken) > 1:
            feeder.replay(feeder.taken[1:])

    reader = csv.reader(feeder, **dialect)
    while True:
        feeder.mark()
        try:
            row = next(reader)
        except StopIteration:
            break
        except (csv.Error, _Broken) as exc:
            if not feeder.taken:  # nothing read: the source ended
                break
            refuse(_csv_message(exc) if isinstance(exc, csv.Error) else str(exc))
            reader = csv.reader(feeder, **dialect)  # a fresh parser state
            continue
        if not row:
            tally.blank += len(feeder.taken)
            continue
        if len(row) != width:
            kind = "MISSING COLUMNS" if len(row) < width else "TOO MANY COLUMNS"
            refuse(f"{kind}: expected {width} fields, found {len(row)}")
            if len(feeder.taken) > 1:
                reader = csv.reader(feeder, **dialect)
            continue
        tally.records += 1
        tally.lines += len(feeder.taken) - 1  # continuation lines of a record
        rows.append([None if v in nulls else v for v in row])
        ords.append(feeder.taken[0][0])
        if len(rows) >= BATCH:
            yield from flush()
            rows, ords, bad = [], [], []
    tally.lines += tally.header + tally.blank + tally.records + tally.malformed
    yield from flush()


def csv_schema(names: list[str]) -> pa.Schema:
    return pa.schema(
        [(n, pa.string()) for n in names]
        + [("_ord", pa.int64()), ("_malformed", pa.string()), ("_raw_line", pa.string())]
    )


def jsonl_batches(
    path: Path, compression: str, label: str, encoding: str, tally: Tally, kind: str = "JSON"
) -> Iterator[pa.RecordBatch]:
    """Every non-blank line as text with its line number; a line whose bytes are invalid
    in the encoding comes with ``_malformed`` set (and its text shown escaped). Also the
    line reader of whitespace-separated files (``kind``: what the line should be)."""
    texts: list[str] = []
    ords: list[int] = []
    broken: list[str | None] = []
    source_encoding, encoding = encoding, line_encoding(encoding)
    lines = physical_lines(path, compression, label, source_encoding)
    for no, raw in enumerate(lines, start=1):
        tally.lines += 1
        try:
            text = raw.decode(encoding)
            problem = None
        except UnicodeDecodeError as exc:
            text = _shown(raw, encoding)
            problem = (
                f"INVALID ENCODING: bytes {raw[exc.start : exc.start + 4]!r} are not valid "
                f"{encoding} (the line is not {kind} text in that encoding)"
            )
        if problem is None and not text.strip():
            tally.blank += 1
            continue
        tally.records += 1
        texts.append(text)
        ords.append(no)
        broken.append(problem)
        if len(texts) >= BATCH:
            yield _jsonl_batch(texts, ords, broken)
            texts, ords, broken = [], [], []
    if texts:
        yield _jsonl_batch(texts, ords, broken)


def _jsonl_batch(texts: list[str], ords: list[int], broken: list[str | None]) -> pa.RecordBatch:
    columns = [
        pa.array(texts, pa.string()),
        pa.array(ords, pa.int64()),
        pa.array(broken, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=jsonl_schema())


def jsonl_schema() -> pa.Schema:
    return pa.schema([("text", pa.string()), ("_ord", pa.int64()), ("_encoding", pa.string())])
