"""The model registry: versions count up, aliases move, artefacts load back."""

from __future__ import annotations

from pathlib import Path

import pytest

from custintel.core import registry
from custintel.core.errors import StageError
from custintel.core.warehouse import Warehouse


def _register(wh: Warehouse, root: Path, model: object, auc: float) -> registry.Entry:
    return registry.register(
        wh,
        root,
        name="churn",
        kind="classifier",
        algorithm="logistic",
        model=model,
        params={"C": 1.0},
        feature_set="customer",
        feature_set_version="abc",
        snapshots=["2025-03-31"],
        data_hash="h",
        metrics={"auc": auc},
        summary={"note": "hello"},
    )


def test_versions_aliases_and_artefacts(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    with Warehouse.open("duckdb://w.duckdb", tmp_path) as wh:
        with pytest.raises(StageError, match="no model named 'churn'"):
            registry.get(wh, "churn")
        (root / "churn" / "v1").mkdir(parents=True)  # left by an interrupted attempt
        first = _register(wh, root, {"weights": [1, 2]}, 0.7)
        second = _register(wh, root, {"weights": [3]}, 0.8)
        assert (first.version, second.version) == (1, 2)
        assert registry.load(root, first) == {"weights": [1, 2]}
        assert registry.summary(root, second) == {"note": "hello"}
        assert registry.get(wh, "churn").version == 2  # the latest
        with pytest.raises(StageError, match="no 'champion' version"):
            registry.get(wh, "churn", alias="champion")
        registry.set_alias(wh, "churn", "champion", 1)
        registry.set_alias(wh, "churn", "champion", 2)
        registry.set_alias(wh, "churn", "champion", 1)  # a rollback
        assert registry.get(wh, "churn", alias="champion").metrics == {"auc": 0.7}
        table = registry.versions(wh, "churn").set_index("version")
        assert table.aliases.to_dict() == {1: "champion", 2: ""}
        with pytest.raises(StageError, match=r"has no version 7 \(versions: 1, 2\)"):
            registry.set_alias(wh, "churn", "champion", 7)
