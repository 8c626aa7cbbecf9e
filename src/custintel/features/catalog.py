"""What a feature is: a name, a description in business words, a type, a family and the
windows it reads; and how a feature set gets its version.

The version is a hash of the declarations *and* of the SQL the definitions compile to, so
changing how a feature is computed changes the version even when its name does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import pandas as pd

Family = Literal["rfm", "windows", "trends", "mix", "engagement"]
Dtype = Literal["int64", "float64", "string", "boolean"]

FAMILIES: tuple[Family, ...] = ("rfm", "windows", "trends", "mix", "engagement")


@dataclass(frozen=True)
class Feature:
    """One column of a feature set."""

    name: str
    description: str
    dtype: Dtype
    family: Family
    windows: tuple[int, ...] = ()
    fill: float | int | bool | None = None
    """Value for customers with no events of the kind (0 for counts); None leaves it empty."""
    kind: Literal["count", "money", "days", "ratio", "score", "category", "flag"] = "count"
    """What the number measures; transforms choose a log for counts and money."""


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned group of features."""

    name: str
    features: tuple[Feature, ...]
    parameters: dict[str, object] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def get(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def version(self, compiled_sql: str) -> str:
        """A short hash of the declarations, the parameters and the compiled definitions."""
        blob = json.dumps(
            {
                "name": self.name,
                "features": [asdict(f) for f in self.features],
                "parameters": self.parameters,
                "sql": compiled_sql,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def catalog(self, version: str) -> pd.DataFrame:
        """One row per feature, as stored in ``features.catalog``."""
        return pd.DataFrame(
            {
                "feature_set": self.name,
                "version": version,
                "name": [f.name for f in self.features],
                "family": [f.family for f in self.features],
                "dtype": [f.dtype for f in self.features],
                "kind": [f.kind for f in self.features],
                "windows": [",".join(str(w) for w in f.windows) for f in self.features],
                "description": [f.description for f in self.features],
            }
        )
