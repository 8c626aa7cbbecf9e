"""A fitted decision tree as rules a CRM can run: readable text and a SQL ``CASE``.

The SQL reproduces scikit-learn's predictions exactly, which takes three details:

- scikit-learn compares features as 32-bit floats against 64-bit thresholds, so the
  SQL casts each feature to ``FLOAT`` before comparing (a value that rounds across a
  threshold would otherwise land on the other side);
- a missing value goes where the tree sent missing values in training
  (``missing_go_to_left``), or to the right when no value was missing there, as
  scikit-learn does;
- a leaf predicts the class with the largest weight, the first one on a tie.

Written by hand because scikit-learn exports trees only as text (``export_text``), not as
SQL, and the text export does not say where missing values go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.tree import DecisionTreeClassifier


@dataclass(frozen=True)
class Rule:
    """One leaf: the conditions on the way to it and what it assigns."""

    conditions: tuple[str, ...]
    label: str
    samples: int
    purity: float

    def text(self) -> str:
        when = " and ".join(self.conditions) or "always"
        return f"if {when} then {self.label} ({self.samples:,} customers, {self.purity:.0%} agree)"


def _leaf_label(tree: DecisionTreeClassifier, node: int, labels: Sequence[str]) -> str:
    return str(labels[int(np.argmax(tree.tree_.value[node][0]))])


def _uniform(tree: DecisionTreeClassifier, node: int, labels: Sequence[str]) -> str | None:
    """The label every leaf under ``node`` predicts, or None when they differ: such a
    subtree is one rule (splits that change nothing are left out)."""
    t = tree.tree_
    if t.children_left[node] == -1:
        return _leaf_label(tree, node, labels)
    left = _uniform(tree, t.children_left[node], labels)
    right = _uniform(tree, t.children_right[node], labels)
    return left if left is not None and left == right else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _number(x: float) -> str:
    return repr(float(x))


def _tightest(path: tuple[tuple[str, str, float, bool], ...]) -> tuple[str, ...]:
    """Conditions on one feature and direction folded into the tightest one; a missing
    value takes the path only if every test on the way sends it there."""
    folded: dict[tuple[str, str], tuple[float, bool]] = {}
    for name, op, cut, missing in path:
        if (name, op) in folded:
            old, was = folded[(name, op)]
            cut = min(old, cut) if op == "<=" else max(old, cut)
            missing = missing and was
        folded[(name, op)] = (cut, missing)
    return tuple(
        f"{name} {op} {cut:.6g}" + (" (or missing)" if missing else "")
        for (name, op), (cut, missing) in folded.items()
    )


def tree_rules(
    tree: DecisionTreeClassifier, features: Sequence[str], labels: Sequence[str]
) -> list[Rule]:
    """Every leaf as a rule, in the tree's left-to-right order."""
    t = tree.tree_
    out: list[Rule] = []

    def walk(node: int, path: tuple[tuple[str, str, float, bool], ...]) -> None:
        label = _uniform(tree, node, labels)
        if label is not None:
            value = t.value[node][0]
            share = value[list(labels).index(label)] / value.sum() if value.sum() else 0.0
            out.append(Rule(_tightest(path), label, int(t.n_node_samples[node]), float(share)))
            return
        name, cut = features[t.feature[node]], float(t.threshold[node])
        missing_left = bool(t.missing_go_to_left[node])
        walk(t.children_left[node], (*path, (name, "<=", cut, missing_left)))
        walk(t.children_right[node], (*path, (name, ">", cut, not missing_left)))

    walk(0, ())
    return out


def tree_sql(tree: DecisionTreeClassifier, features: Sequence[str], labels: Sequence[str]) -> str:
    """A SQL ``CASE`` expression giving the tree's prediction for a row."""
    t = tree.tree_

    def expr(node: int) -> str:
        label = _uniform(tree, node, labels)
        if label is not None:
            return "'" + label.replace("'", "''") + "'"
        col = f"CAST({_quote(features[t.feature[node]])} AS FLOAT)"
        test = f"{col} <= {_number(t.threshold[node])}"
        if t.missing_go_to_left[node]:
            test = f"({col} IS NULL OR {test})"
        left, right = expr(t.children_left[node]), expr(t.children_right[node])
        return f"CASE WHEN {test} THEN {left} ELSE {right} END"

    return expr(0)
