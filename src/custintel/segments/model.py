"""A fitted segmentation: everything needed to place any customer of any snapshot.

Customers with fewer than ``min_purchases`` purchases have too little behaviour to
cluster; they get a rule segment (No Purchase Yet, then One-Time Buyers or Early Buyers)
and everyone else goes through the same preparation and clustering as at fit time. The
RFM method needs no fitting: it reads the recency and frequency scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from custintel.segments.methods import Clusterer
from custintel.segments.prepare import Preparation
from custintel.segments.rfm import NO_PURCHASE, RFM_SEGMENTS, segment_of
from custintel.segments.rules import tree_rules, tree_sql

NO_PURCHASE_ID = "NP"
EARLY_ID = "EB"


def early_name(min_purchases: int) -> str:
    return "One-Time Buyers" if min_purchases == 2 else "Early Buyers"


def rfm_ids() -> dict[str, str]:
    """Stable ids of the RFM segments: R1.. in the grid's order, NP without a purchase."""
    return {
        **{s.name: f"R{i + 1}" for i, s in enumerate(RFM_SEGMENTS)},
        NO_PURCHASE: NO_PURCHASE_ID,
    }


@dataclass
class SegmentModel:
    method: str
    features: list[str]
    min_purchases: int
    feature_set_version: str
    as_of: str
    preparation: Preparation | None = None
    clusterer: Clusterer | None = None
    mapping: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    names: dict[str, str] = field(default_factory=dict)  # segment id -> name
    tree: DecisionTreeClassifier | None = None
    tree_features: list[str] = field(default_factory=list)

    @property
    def k(self) -> int:
        return len([s for s in self.names if s.startswith("S")])

    def _history(self, frame: pd.DataFrame) -> np.ndarray:
        return pd.to_numeric(frame["purchase_count"], errors="coerce").fillna(0).to_numpy()

    def clustered(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows are clustered (the rest get a rule segment)."""
        return self._history(frame) >= self.min_purchases

    def cluster_ids(self, frame: pd.DataFrame) -> np.ndarray:
        """Segment ids (S1..Sk) of rows that are all clustered."""
        assert self.preparation is not None and self.clusterer is not None
        raw = self.clusterer.predict(self.preparation.transform(frame))
        return np.array([f"S{c + 1}" for c in self.mapping[raw]], dtype=object)

    def assign(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``customer_id``, ``segment_id`` and ``segment_name`` for every row."""
        ids = np.empty(len(frame), dtype=object)
        if self.method == "rfm":
            codes = rfm_ids()
            r = pd.to_numeric(frame["rfm_recency_score"], errors="coerce")
            f = pd.to_numeric(frame["rfm_frequency_score"], errors="coerce")
            names = [
                segment_of(None if pd.isna(a) else int(a), None if pd.isna(b) else int(b))
                for a, b in zip(r, f, strict=True)
            ]
            ids[:] = [codes[n] for n in names]
        else:
            history = self._history(frame)
            ids[history < 1] = NO_PURCHASE_ID
            ids[(history >= 1) & (history < self.min_purchases)] = EARLY_ID
            inside = history >= self.min_purchases
            if inside.any():
                ids[inside] = self.cluster_ids(frame[inside])
        return pd.DataFrame(
            {
                "customer_id": frame["customer_id"].to_numpy(),
                "segment_id": ids,
                "segment_name": [self.names[i] for i in ids],
            }
        )

    # -- rules a CRM can run ---------------------------------------------------------------
    def _rule_prefix(self) -> list[tuple[str, str, str]]:
        """(SQL condition, readable condition, segment name) of the rule segments."""
        out = []
        if self.min_purchases >= 1:
            out.append(
                (
                    'coalesce("purchase_count", 0) < 1',
                    "purchase_count < 1 (or missing)",
                    self.names[NO_PURCHASE_ID],
                )
            )
        if self.min_purchases >= 2:
            out.append(
                (
                    f'"purchase_count" < {self.min_purchases}',
                    f"purchase_count < {self.min_purchases}",
                    self.names[EARLY_ID],
                )
            )
        return out

    def _rfm_sql(self) -> str:
        r, f = '"rfm_recency_score"', '"rfm_frequency_score"'
        whens = [
            f"WHEN {r} BETWEEN {s.recency[0]} AND {s.recency[1]} AND "
            f"{f} BETWEEN {s.frequency[0]} AND {s.frequency[1]} THEN '{s.name.replace(chr(39), chr(39) * 2)}'"
            for s in RFM_SEGMENTS
        ]
        return "CASE " + " ".join(whens) + f" ELSE '{NO_PURCHASE}' END"

    def to_sql(self) -> str:
        """A SQL ``CASE`` over the feature table's columns giving each customer's segment
        name: the rule segments first, then the surrogate tree."""
        if self.method == "rfm":
            return self._rfm_sql()
        assert self.tree is not None
        labels = [self.names[str(c)] for c in self.tree.classes_]
        tree = tree_sql(self.tree, self.tree_features, labels)
        prefix = self._rule_prefix()
        if not prefix:
            return tree
        whens = " ".join(
            f"WHEN {cond} THEN '{name.replace(chr(39), chr(39) * 2)}'" for cond, _, name in prefix
        )
        return f"CASE {whens} ELSE {tree} END"

    def to_text(self) -> list[str]:
        """The same rules as readable lines, in the order they apply."""
        if self.method == "rfm":
            return [
                f"if R score {s.recency[0]}-{s.recency[1]} and F score "
                f"{s.frequency[0]}-{s.frequency[1]} then {s.name} ({s.meaning})"
                for s in RFM_SEGMENTS
            ] + [f"otherwise {NO_PURCHASE}"]
        assert self.tree is not None
        lines = [f"if {text} then {name}" for _, text, name in self._rule_prefix()]
        labels = [self.names[str(c)] for c in self.tree.classes_]
        lines += [
            ("otherwise " if lines else "") + r.text()
            for r in tree_rules(self.tree, self.tree_features, labels)
        ]
        return lines
