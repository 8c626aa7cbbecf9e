"""Finding a source's input files and fingerprinting them.

A file is identified by its path relative to the project and its sha256: the same content
again is a no-op, a changed file replaces its own earlier rows, a new file in a folder is
picked up by the next run.
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path

from custintel.core.errors import SourceError

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
COMPRESSED = (".gz", ".zst")


@dataclass(frozen=True)
class InputFile:
    path: Path
    relative: str
    size_bytes: int
    sha256: str
    format: str


def sha256_of(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    """Hash a file in chunks, so a file of any size never sits whole in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def detect_format(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    raise SourceError(f"{path}: cannot tell the format from the name; set `format:` on the source")


@dataclass(frozen=True)
class Found:
    """What a source's ``path`` matched: inputs to load and files it cannot read."""

    files: list[InputFile]
    ignored: list[tuple[str, str]]  # (relative path, why)
    folders: list[str]  # matched folders (a pattern without a file part?)


def _relative(path: Path, project_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_dir.resolve()))
    except ValueError:
        return str(path.resolve())


def discover(project_dir: Path, pattern: str, declared_format: str | None) -> Found:
    """Every file matching ``pattern`` (a path or glob relative to the project), sorted.

    A file whose format cannot be told from its name (a README beside the exports) is
    set aside with the reason, so the rest of the source still loads.
    """
    base = Path(pattern)
    full = str(base if base.is_absolute() else project_dir / base)
    matched = sorted(Path(p) for p in glob.glob(full, recursive=True))
    files: list[InputFile] = []
    ignored: list[tuple[str, str]] = []
    folders = [_relative(p, project_dir) for p in matched if p.is_dir()]
    for path in (p for p in matched if p.is_file()):
        relative = _relative(path, project_dir)
        try:
            fmt = detect_format(path, declared_format)
        except SourceError:
            suffix = "".join(path.suffixes) or "no extension"
            ignored.append(
                (relative, f"cannot tell the format from the name ({suffix}); not loaded")
            )
            continue
        files.append(
            InputFile(
                path=path,
                relative=relative,
                size_bytes=path.stat().st_size,
                sha256=sha256_of(path),
                format=fmt,
            )
        )
    return Found(files, ignored, folders)
