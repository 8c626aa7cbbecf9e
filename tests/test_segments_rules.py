"""Surrogate-tree rules: the SQL CASE reproduces the tree's assignments exactly."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from custintel.segments.rules import tree_rules, tree_sql


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "spend": rng.lognormal(4, 1, n),
            "recency days": rng.integers(0, 700, n).astype(float),  # a name needing quotes
            "open_rate": rng.random(n),
        }
    )
    frame.loc[rng.random(n) < 0.2, "open_rate"] = np.nan
    segment = np.select(
        [frame.spend > 120, frame["recency days"] > 300, frame.open_rate.fillna(0) > 0.5],
        ["High-Value", "Lapsing", "Engaged"],
        "Occasional",
    )
    return frame, segment


def test_sql_case_reproduces_the_tree_exactly() -> None:
    frame, segment = _data(20_000, 1)
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(frame, segment)
    sql = tree_sql(tree, list(frame.columns), list(tree.classes_))
    fresh, _ = _data(50_000, 2)
    # values that sit exactly on thresholds, and in between in float32
    cuts = tree.tree_.threshold[tree.tree_.feature >= 0]
    fresh.loc[: len(cuts) - 1, "spend"] = cuts
    expected = tree.predict(fresh)
    con = duckdb.connect()
    con.register("customers", fresh)
    got = con.sql(f"SELECT {sql} AS segment FROM customers").df().segment.to_numpy()
    assert (got == expected).all()
    assert (tree.predict(frame) == segment).mean() > 0.95


def test_rules_read_as_text_and_cover_every_leaf() -> None:
    frame, segment = _data(5_000, 3)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame, segment)
    rules = tree_rules(tree, list(frame.columns), list(tree.classes_))
    assert len(rules) == tree.get_n_leaves()
    assert sum(r.samples for r in rules) == len(frame)
    assert all(r.text().startswith("if ") for r in rules)
    assert any("(or missing)" in c for r in rules for c in r.conditions)
