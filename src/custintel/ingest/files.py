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


def discover(project_dir: Path, pattern: str, declared_format: str | None) -> list[InputFile]:
    """Every file matching ``pattern`` (a path or glob relative to the project), sorted."""
    base = Path(pattern)
    full = str(base if base.is_absolute() else project_dir / base)
    paths = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
    files = []
    for path in paths:
        try:
            relative = str(path.resolve().relative_to(project_dir.resolve()))
        except ValueError:
            relative = str(path.resolve())
        files.append(
            InputFile(
                path=path,
                relative=relative,
                size_bytes=path.stat().st_size,
                sha256=sha256_of(path),
                format=detect_format(path, declared_format),
            )
        )
    return files
