"""What a load reports (:class:`LoadResult`, :class:`IngestSummary`) and the check that
what it wrote adds up (:func:`reconcile`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from custintel.core.contracts import Contract
from custintel.core.errors import ReconciliationError
from custintel.core.sqltext import literal as _lit
from custintel.core.warehouse import Warehouse

QUARANTINE_TABLE = "rows"
FIELDS_TABLE = "fields"
"""Values of optional attributes cleared on kept rows (contract ``field_level`` columns)."""
Progress = Callable[[str, int, int], None]


@dataclass
class LoadResult:
    """What happened to one input."""

    source: str
    file: str
    status: str  # loaded | skipped | failed | ignored | missing | removed
    rows_in: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    flag_counts: dict[str, int] = field(default_factory=dict)
    field_counts: dict[str, int] = field(default_factory=dict)
    """Values cleared on kept rows, by field-level rule."""
    extra_columns: list[str] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0

    @property
    def reconciled(self) -> bool:
        return self.rows_in == self.rows_clean + self.rows_quarantined + self.rows_duplicate


@dataclass
class IngestSummary:
    run_id: str
    results: list[LoadResult]
    warnings: list[str] = field(default_factory=list)

    def total(self, attr: str) -> int:
        return sum(getattr(r, attr) for r in self.results)

    @property
    def failed(self) -> list[LoadResult]:
        return [r for r in self.results if r.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "files_loaded": sum(r.status == "loaded" for r in self.results),
            "files_skipped": sum(r.status == "skipped" for r in self.results),
            "files_failed": len(self.failed),
            "rows_in": self.total("rows_in"),
            "rows_clean": self.total("rows_clean"),
            "rows_quarantined": self.total("rows_quarantined"),
            "rows_duplicate": self.total("rows_duplicate"),
            "warnings": list(self.warnings),
            "results": [asdict(r) for r in self.results],
        }


def fault_point(name: str) -> None:
    """Pause here when CUSTINTEL_FAULT_PAUSE names this point (crash-safety tests).

    The test starts a real ingest in a subprocess, waits for the marker file this writes
    and kills the process with SIGKILL in the middle of a load's transaction.
    """
    if os.environ.get("CUSTINTEL_FAULT_PAUSE") == name:
        Path(os.environ["CUSTINTEL_FAULT_MARKER"]).write_text(name)
        time.sleep(3600)


@contextmanager
def session_timezone(duck: Any, zone: str) -> Iterator[None]:
    """Read naive timestamps in ``zone`` for the statements inside, then back to UTC."""
    duck.execute(f"SET TimeZone = {_lit(zone)}")
    try:
        yield
    finally:
        duck.execute("SET TimeZone = 'UTC'")


def reconcile(wh: Warehouse, result: LoadResult, contract: Contract, load_id: str) -> None:
    """Count what this load really wrote and refuse the load unless every row read is
    in exactly one place: ``rows_in = clean + quarantined + duplicates``."""

    def written(schema: str, table: str) -> int:
        sql = f"SELECT count(*) FROM {wh.qualified(schema, table)} WHERE _load_id = {_lit(load_id)}"
        found = wh.sql(sql)
        rows = found.collect() if wh.kind == "spark" else found.fetchall()
        return int(rows[0][0])

    written_clean = written("clean", contract.name)
    written_q = written("quarantine", QUARANTINE_TABLE)
    cleared = sum(result.field_counts.values())
    if cleared and written("quarantine", FIELDS_TABLE) != cleared:
        raise ReconciliationError(
            f"{result.source}: {result.file}: {cleared} values cleared but "
            f"{written('quarantine', FIELDS_TABLE)} recorded in quarantine.{FIELDS_TABLE}"
        )
    if (written_clean, written_q) != (result.rows_clean, result.rows_quarantined) or (
        result.rows_in != written_clean + written_q + result.rows_duplicate
    ):
        raise ReconciliationError(
            f"{result.source}: {result.file}: {result.rows_in} rows in but {written_clean} clean + "
            f"{written_q} quarantined + {result.rows_duplicate} duplicates were written"
        )
