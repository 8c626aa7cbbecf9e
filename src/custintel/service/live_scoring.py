"""Scoring one row sent in a request: a visitor without a profile yet, or features the
caller computed itself.

The row is encoded straight into the model's input (numbers as doubles, categories as the
positions of their levels, missing as NaN), with no DataFrame, and run through the
model's ONNX graph when it has one (the graph is checked against the native model at
training, to about 1e-12); otherwise through the native model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from custintel.models import explain
from custintel.models import onnx as onnx_export
from custintel.models.scoring import decile_of, tiers

Value = float | int | str | bool | None


class RowError(ValueError):
    """A row that cannot be scored, with what is wrong in it."""


def _widest(*ranges: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """Each feature's range over the model's training rows and the published customers:
    a live row inside it is one the model has seen the like of, in training or in the
    batch scores the service already gives out."""
    out: dict[str, tuple[float, float]] = {}
    for r in ranges:
        for name, (low, high) in r.items():
            was = out.get(name, (low, high))
            out[name] = (min(was[0], low), max(was[1], high))
    return out


class LiveModel:
    """One published model, ready to score single rows."""

    def __init__(
        self,
        folder: Path,
        info: dict[str, Any],
        ranges: dict[str, list[float]],
        words: dict[str, str] | None = None,
        published: frozenset[str] = frozenset(),
    ) -> None:
        self.folder = folder
        self.published = published  # the snapshot's feature names
        self.words = words or {}
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        graph = summary.get("onnx") or {}
        self.version = int(info["version"])
        self.cutoffs = list(info.get("cutoffs") or [])
        self.ranges = _widest(summary.get("ranges") or {}, ranges)
        self._native = None
        self._session = None
        if graph.get("available") and (folder / "model.onnx").exists():
            self._session = onnx_export.session((folder / "model.onnx").read_bytes())
            self.features = list(graph["features"])
            self.categories = {c: list(v) for c, v in graph["categories"].items()}
            self.engine = "onnx"
        else:
            self._native = joblib.load(folder / "model.joblib")
            self.features = list(self._native.features)
            self.categories = {c: list(v) for c, v in self._native.categories.items()}
            self.engine = "native"
        self._codes = {
            c: {str(v): float(i) for i, v in enumerate(levels)}
            for c, levels in self.categories.items()
        }
        self._position = {f: j for j, f in enumerate(self.features)}

    def encode(self, values: dict[str, Value]) -> tuple[np.ndarray, list[str], list[str]]:
        """The model's input row, the features not given (scored as missing) and those
        given that are published features the model does not use (left aside: a
        caller may send a whole profile). A name that is no feature at all is an error."""
        unknown = sorted(set(values) - set(self._position) - self.published)
        if unknown:
            raise RowError(f"no such feature: {', '.join(unknown[:10])}")
        ignored = sorted(set(values) - set(self._position))
        row = np.full((1, len(self.features)), np.nan)
        for name, value in values.items():
            j = self._position.get(name)
            if j is None:
                continue
            if value is None:
                continue
            if name in self._codes:
                row[0, j] = self._codes[name].get(str(value), np.nan)  # unseen level: missing
                continue
            if isinstance(value, str):
                raise RowError(f"{name}: expected a number, got text")
            number = float(value)
            if not math.isfinite(number):
                raise RowError(f"{name}: expected a finite number")
            low, high = self.ranges.get(name, (None, None))
            if low is not None and high is not None and not low <= number <= high:
                raise RowError(
                    f"{name}: {number:g} is outside the range the model was trained and "
                    f"scored on ({low:g} to {high:g})"
                )
            row[0, j] = number
        missing = [f for f in self.features if f not in values]
        return row, missing, ignored

    def _frame(self, row: np.ndarray) -> Any:
        """The row as the native model's DataFrame (the native path and reasons only)."""
        import pandas as pd

        frame = pd.DataFrame(row, columns=self.features)
        for c, levels in self.categories.items():
            codes = frame[c].fillna(-1).astype(int)
            frame[c] = pd.Categorical.from_codes(codes, categories=levels)
        return frame

    def _native_model(self) -> Any:
        if self._native is None:
            self._native = joblib.load(self.folder / "model.joblib")
        return self._native

    def score(self, row: np.ndarray) -> float:
        if self._session is not None:
            return float(self._session.run([onnx_export.OUTPUT], {onnx_export.INPUT: row})[0][0])
        return float(self._native_model().predict(self._frame(row))[0])

    def reasons(self, row: np.ndarray) -> list[str]:
        """The batch's reasons for this row: exact per-row SHAP of the native model,
        worded from the feature catalog (a few milliseconds, so only when asked)."""
        X = self._frame(row)
        pushes = explain.contributions(self._native_model().members, X)
        if pushes is None:
            return []
        return json.loads(explain.reasons(pushes, X, self.words)[0])

    def answer(self, values: dict[str, Value], *, with_reasons: bool = False) -> dict[str, Any]:
        row, missing, ignored = self.encode(values)
        score = self.score(row)
        decile = decile_of(score, self.cutoffs) if self.cutoffs else None
        return {
            "score": score,
            "decile": decile,
            "tier": str(tiers(np.array([decile]))[0]) if decile is not None else None,
            "model_version": self.version,
            "engine": self.engine,
            "missing": missing,
            "ignored": ignored,
            "reasons": self.reasons(row) if with_reasons else None,
        }
