"""The serving store: a published snapshot in memory, looked up by customer id.

The Arrow file is memory-mapped, so each worker's columns are views of one page cache
copy; numeric columns become NumPy views and a lookup is a dictionary hit and a few array
reads, with no DataFrame per request. :class:`Live` holds the current store and swaps in
a new one when ``CURRENT`` names another snapshot: requests in flight keep the store they
started with, so a swap fails none of them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from custintel.campaigns.decide import Plan
from custintel.core.eventstream import RedisEvents
from custintel.pipeline.serving_tasks import CUSTOMERS, MANIFEST, current_snapshot
from custintel.service.live_scoring import LiveModel
from custintel.service.next_best import NextBest, Overlay


def _column(table: pa.Table, name: str) -> Any:
    """A column as NumPy (numbers, nulls as NaN) or a Python list (text)."""
    col = table.column(name).combine_chunks()
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        if col.null_count == 0:
            return col.to_numpy(zero_copy_only=False)
        return col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    return col.to_pylist()


def _value(col: Any, i: int) -> Any:
    v = col[i]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:  # NaN: no value
        return None
    return v


@dataclass
class Store:
    """One snapshot: its manifest, its columns and a row number per customer."""

    folder: Path
    manifest: dict[str, Any]
    rows: dict[str, int]
    columns: dict[str, Any]
    models: dict[str, LiveModel] = field(default_factory=dict)
    model_errors: dict[str, str] = field(default_factory=dict)
    nba: NextBest | None = None
    overlay: Overlay | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @classmethod
    def load(
        cls,
        folder: Path,
        plan: Plan | None = None,
        regime: str = "opt_out",
        stream: RedisEvents | None = None,
    ) -> Store:
        """The snapshot in ``folder``; with the ``nba`` plan, its next-best-action rows
        too (a snapshot published without offers has none)."""
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        source = pa.memory_map(str(folder / CUSTOMERS), "r")
        table = pa.ipc.open_file(source).read_all()
        ids = table.column("customer_id").to_pylist()
        columns = {c: _column(table, c) for c in table.column_names if c != "customer_id"}
        store = cls(folder, manifest, {c: i for i, c in enumerate(ids)}, columns)
        project_dir = folder.parents[2]  # <project>/serving/snapshots/v<N>
        for name, info in manifest["models"].items():
            try:
                store.models[name] = LiveModel(
                    project_dir / info["path"],
                    info,
                    manifest.get("ranges", {}),
                    manifest.get("descriptions", {}),
                    frozenset(manifest["features"]) | frozenset(manifest.get("categorical", [])),
                )
            except Exception as exc:  # a model that cannot load: its answers fall back
                store.model_errors[name] = f"{type(exc).__name__}: {exc}"
        store.overlay = Overlay(project_dir, folder, manifest, stream)
        if plan is not None and manifest.get("nba"):
            store.nba = NextBest(folder, plan, regime)
        return store

    def row(self, customer_id: str) -> int | None:
        return self.rows.get(customer_id)

    def get(self, column: str, i: int) -> Any:
        col = self.columns.get(column)
        return None if col is None else _value(col, i)

    def scores(self, i: int) -> dict[str, dict[str, Any]]:
        """Every published model's score of row ``i`` (None where the batch had none)."""
        out = {}
        for name, info in self.manifest["models"].items():
            score = self.get(f"{name}__score", i)
            reasons = self.get(f"{name}__reasons", i)
            out[name] = {
                "score": score,
                "decile": self.get(f"{name}__decile", i),
                "tier": self.get(f"{name}__tier", i),
                # stored as JSON text: embedded as it is, not parsed and written again
                "reasons": orjson.Fragment(reasons) if reasons else [],
                "model_version": info["version"],
                "as_of": info["as_of"],
            }
        return out

    def features(self, i: int) -> dict[str, Any]:
        names = [*self.manifest["features"], *self.manifest.get("categorical", [])]
        return {n: self.get(n, i) for n in names}


class Live:
    """The store in use, swapped to the newest snapshot when ``CURRENT`` changes."""

    def __init__(
        self,
        project_dir: Path,
        check_every_s: float = 0.5,
        plan: Plan | None = None,
        regime: str = "opt_out",
        stream: RedisEvents | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.plan, self.regime, self.stream = plan, regime, stream
        self.check_every_s = check_every_s
        self.store: Store | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Load the snapshot ``CURRENT`` names if it is not the one in use; True on a swap.
        A snapshot that fails to load leaves the old one serving (and says why)."""
        with self._lock:
            folder = current_snapshot(self.project_dir)
            if folder is None or (self.store is not None and self.store.folder == folder):
                return False
            try:
                store = Store.load(folder, self.plan, self.regime, self.stream)
            except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
                self.error = f"snapshot {folder.name} failed to load: {exc}"
                return False
            self.store, self.error = store, None  # one assignment: the swap
            return True

    def start(self) -> None:
        """Watch ``CURRENT`` in a background thread."""

        def watch() -> None:
            while not self._stop.wait(self.check_every_s):
                self.refresh()

        self._thread = threading.Thread(target=watch, name="snapshot-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
