"""Counting what a text file holds, independently of the parser that will read it.

A CSV parser that meets an unclosed quote reads the rest of the file as one field; a gzip
stream cut short simply ends. Either way the parser reports fewer records than the file
holds and nothing looks wrong. The census reads the (decompressed) bytes once with plain
byte counting, so the loader can compare what the parser returned with what is there:

- physical lines, and blank lines (which parsers skip) before the last non-blank line;
- newlines that fall inside quotes, by quote parity (``""`` inside a quoted field flips
  the parity twice, so RFC 4180 doubling needs no special case);
- whether the file ends inside an open quote.

A compressed input is decompressed whole here, so a truncated or corrupt gzip or zstd
file fails before anything is read from it.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from custintel.core.errors import SourceError

CHUNK = 8 * 1024 * 1024


def compression_of(path: Path, declared: str = "auto") -> str:
    """``gzip``, ``zstd`` or ``none``: as declared, else from the file name."""
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    return {".gz": "gzip", ".zst": "zstd"}.get(suffix, "none")


def line_encoding(encoding: str) -> str:
    """The encoding of the bytes :func:`open_bytes` gives: UTF-16 arrives as UTF-8."""
    return "utf-8" if encoding == "utf-16" else encoding


@contextmanager
def open_bytes(
    path: Path, compression: str, label: str, encoding: str = "utf-8"
) -> Iterator[BinaryIO]:
    """The file's bytes, decompressed; a truncated or corrupt stream raises SourceError.

    gzip goes through Python's own module, which checks the CRC and the length at the
    end of every member; zstd through pyarrow's codec, which refuses a truncated frame.
    UTF-16 text is transcoded to UTF-8, so lines can be split on the newline byte (a
    UTF-16 stream cannot be resynchronised after a bad byte: it fails whole).
    """
    try:
        if compression == "gzip":
            with gzip.open(path, "rb") as handle:
                yield _wrap(_Checked(handle, label, "gzip"), encoding, label)
        elif compression == "zstd":
            with pa.CompressedInputStream(pa.OSFile(str(path)), "zstd") as handle:
                yield _wrap(_Checked(handle, label, "zstd"), encoding, label)
        else:
            with path.open("rb") as handle:
                yield _wrap(handle, encoding, label)
    except OSError as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{label}: cannot be read: {exc}") from exc


def _wrap(handle: object, encoding: str, label: str) -> BinaryIO:
    if encoding == "utf-16":
        return _Transcoded(handle, label)  # type: ignore[return-value]
    return handle  # type: ignore[return-value]


class _Transcoded:
    """UTF-16 bytes read as UTF-8 bytes, chunk by chunk."""

    def __init__(self, handle: object, label: str) -> None:
        self.handle = handle
        self.label = label
        self.decoder = codecs.getincrementaldecoder("utf-16")("strict")

    def read(self, size: int = -1) -> bytes:
        while True:
            raw = self.handle.read(size)  # type: ignore[attr-defined]
            try:
                text = self.decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise SourceError(
                    f"{self.label}: not valid UTF-16 ({exc.reason}); nothing was loaded from it"
                ) from None
            if text or not raw:
                return text.encode("utf-8")


class _Checked:
    """A decompressing reader whose errors say the file is truncated or corrupt."""

    def __init__(self, handle: object, label: str, kind: str) -> None:
        self.handle = handle
        self.label = label
        self.kind = kind

    def read(self, size: int = -1) -> bytes:
        try:
            return self.handle.read(size)  # type: ignore[attr-defined,no-any-return]
        except (EOFError, OSError, zlib.error, ValueError) as exc:
            raise SourceError(
                f"{self.label}: the {self.kind} file is truncated or corrupt ({exc}); "
                "nothing was loaded from it"
            ) from None


@dataclass(frozen=True)
class TextCensus:
    """What the bytes of a line-oriented file hold."""

    lines: int
    """Physical lines; a last line without a newline counts."""
    blank_lines: int
    """Empty lines (``\\r`` alone counts as empty) anywhere outside quotes."""
    inner_blank_lines: int
    """Blank lines followed later by a non-blank line (parsers skip them, which shifts
    the numbering of the records after them)."""
    quoted_newlines: int
    """Newlines inside quotes: records that span lines."""
    open_quote_at_end: bool
    """The file ends inside a quote: a quote was opened and never closed."""

    @property
    def regular(self) -> bool:
        """One record per line and nothing a parser skips before the last record."""
        return not (self.quoted_newlines or self.open_quote_at_end or self.inner_blank_lines)

    def records(self, header_lines: int) -> int:
        """Records after the header of a regular file: its non-blank lines."""
        return max(self.lines - self.blank_lines - header_lines, 0)


def text_census(
    path: Path,
    compression: str,
    label: str,
    *,
    quote: str = '"',
    escape: str = '"',
    encoding: str = "utf-8",
) -> TextCensus:
    """Count the lines of a text file (decompressed), with quote parity when ``quote``."""
    q = quote.encode("latin-1")[0] if quote else None
    esc = escape.encode("latin-1")[0] if escape and escape != quote else None
    lines = blank = trailing_blank = quoted = 0
    inside = 0  # quote parity carried across chunks
    last_end = -1  # offset of the last line end outside quotes, relative to the chunk
    prev_byte = -1  # last byte of the previous chunk
    offset_seen = False
    with open_bytes(path, compression, label, encoding) as handle:
        while chunk := handle.read(CHUNK):
            offset_seen = True
            arr = np.frombuffer(chunk, dtype=np.uint8)
            has_quote = q is not None and (inside or chunk.find(bytes([q])) >= 0)
            simple = (
                not has_quote
                and chunk.find(b"\n\n") < 0
                and chunk.find(b"\n\r\n") < 0
                and not chunk.startswith((b"\n", b"\r\n"))
            )
            if simple:
                # The common case, counted without locating every newline: no line in
                # this chunk can be blank.
                count = chunk.count(b"\n")
                if count:
                    lines += count
                    trailing_blank = 0
                    last_end = chunk.rfind(b"\n") - len(chunk)
                else:
                    last_end -= len(chunk)
                prev_byte = chunk[-1]
                continue
            newlines = np.flatnonzero(arr == 10)
            if has_quote:
                quotes = np.flatnonzero(arr == q)
                if esc is not None and len(quotes):
                    before = quotes - 1
                    escaped = np.zeros(len(quotes), dtype=bool)
                    inner = before >= 0
                    escaped[inner] = arr[before[inner]] == esc
                    if len(quotes) and quotes[0] == 0 and prev_byte == esc:
                        escaped[0] = True
                    quotes = quotes[~escaped]
                parity = (inside + np.searchsorted(quotes, newlines)) & 1
                quoted += int(parity.sum())
                ends = newlines[parity == 0]
                inside = (inside + len(quotes)) & 1
            else:
                ends = newlines
            lines += len(newlines)
            if len(ends):
                is_blank = _blank_mask(arr, ends, last_end, prev_byte)
                blank += int(is_blank.sum())
                nonblank = np.flatnonzero(~is_blank)
                if len(nonblank):
                    trailing_blank = len(ends) - 1 - int(nonblank[-1])
                else:
                    trailing_blank += len(ends)
                last_end = int(ends[-1]) - len(chunk)
            else:
                last_end -= len(chunk)
            prev_byte = int(arr[-1])
    if offset_seen and prev_byte != 10:
        lines += 1  # a last line without a newline: it has content
        trailing_blank = 0
    return TextCensus(
        lines=lines,
        blank_lines=blank,
        inner_blank_lines=blank - trailing_blank,
        quoted_newlines=quoted,
        open_quote_at_end=bool(inside),
    )


def _blank_mask(arr: np.ndarray, ends: np.ndarray, last_end: int, prev_byte: int) -> np.ndarray:
    """For each line end (outside quotes) in the chunk, whether its line is empty."""
    starts = np.empty(len(ends), dtype=np.int64)
    starts[0] = last_end + 1
    starts[1:] = ends[:-1] + 1
    length = ends - starts
    carriage = np.zeros(len(ends), dtype=bool)
    one = length == 1
    if one.any():
        idx = ends[one] - 1
        cr = np.where(idx >= 0, arr[np.maximum(idx, 0)] == 13, prev_byte == 13)
        carriage[one] = cr
    return (length == 0) | carriage
