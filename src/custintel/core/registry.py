"""The model registry: every fitted model, versioned, with where it came from.

``models.registry`` has one row per (name, version): algorithm, parameters, the feature
set and its version, the snapshots it was trained on, a hash of the training data,
metrics, when, status and the artefact's folder. ``models.aliases`` points names such as
``active`` or ``champion`` at one version; moving an alias is how a model is deployed
or rolled back. Artefacts live under the project's ``artifacts/<name>/v<version>/``
(``model.joblib`` and a ``summary.json`` a report can read without unpickling).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from custintel.core.errors import StageError
from custintel.core.warehouse import Warehouse

SCHEMA = "models"


@dataclass(frozen=True)
class Entry:
    name: str
    version: int
    kind: str
    algorithm: str
    params: dict[str, Any]
    feature_set: str
    feature_set_version: str
    snapshots: list[str]
    data_hash: str
    metrics: dict[str, Any]
    created_at: dt.datetime
    status: str
    artifact: str

    def folder(self, root: Path) -> Path:
        return root / self.artifact


def _entry(row: dict[str, Any]) -> Entry:
    return Entry(
        name=row["name"],
        version=int(row["version"]),
        kind=row["kind"],
        algorithm=row["algorithm"],
        params=json.loads(row["params"]),
        feature_set=row["feature_set"],
        feature_set_version=row["feature_set_version"],
        snapshots=json.loads(row["snapshots"]),
        data_hash=row["data_hash"],
        metrics=json.loads(row["metrics"]),
        created_at=pd.Timestamp(row["created_at"]).to_pydatetime(),
        status=row["status"],
        artifact=row["artifact"],
    )


def versions(wh: Warehouse, name: str | None = None) -> pd.DataFrame:
    """Registry rows (of one model name), oldest first, with their aliases."""
    if not wh.exists(SCHEMA, "registry"):
        return pd.DataFrame()
    rows = wh.table(SCHEMA, "registry").execute()
    if name is not None:
        rows = rows[rows.name == name]
    aliases = _aliases(wh)
    rows = rows.assign(
        aliases=[
            ", ".join(sorted(a for (n, a), v in aliases.items() if n == r.name and v == r.version))
            for r in rows.itertuples()
        ]
    )
    return rows.sort_values(["name", "version"], ignore_index=True)


def _aliases(wh: Warehouse) -> dict[tuple[str, str], int]:
    if not wh.exists(SCHEMA, "aliases"):
        return {}
    t = wh.table(SCHEMA, "aliases").execute()
    return {(r.name, r.alias): int(r.version) for r in t.itertuples()}


def register(
    wh: Warehouse,
    root: Path,
    *,
    name: str,
    kind: str,
    algorithm: str,
    model: Any,
    params: dict[str, Any],
    feature_set: str,
    feature_set_version: str,
    snapshots: list[str],
    data_hash: str,
    metrics: dict[str, Any],
    summary: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
) -> Entry:
    """Save the artefact and add a registry row with the next version number.

    The artefact is written first and the row last, so an interrupted call leaves at most
    an unreferenced folder, never a row without its model.
    """
    wh.ensure_schema(SCHEMA)
    existing = versions(wh, name)
    version = int(existing.version.max()) + 1 if len(existing) else 1
    artifact = f"{name}/v{version}"
    folder = root / artifact
    if folder.exists():
        shutil.rmtree(folder)  # left by an interrupted earlier attempt
    folder.mkdir(parents=True)
    joblib.dump(model, folder / "model.joblib")
    for file_name, content in (files or {}).items():
        (folder / file_name).write_bytes(content)
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary, default=str), encoding="utf-8")
    row = {
        "name": name,
        "version": version,
        "kind": kind,
        "algorithm": algorithm,
        "params": json.dumps(params, sort_keys=True, default=str),
        "feature_set": feature_set,
        "feature_set_version": feature_set_version,
        "snapshots": json.dumps(snapshots),
        "data_hash": data_hash,
        "metrics": json.dumps(metrics, sort_keys=True, default=str),
        "created_at": pd.Timestamp.now(tz="UTC"),
        "status": "registered",
        "artifact": artifact,
    }
    wh.put(SCHEMA, "registry", pd.DataFrame([row]), append=True)
    return _entry(row)


def get(wh: Warehouse, name: str, version: int | None = None, alias: str | None = None) -> Entry:
    """One version: by number, by alias, or the latest."""
    rows = versions(wh, name)
    if rows.empty:
        raise StageError(f"models: no model named {name!r} in the registry")
    if alias is not None and version is None:
        version = _aliases(wh).get((name, alias))
        if version is None:
            raise StageError(f"models: {name!r} has no {alias!r} version")
    if version is None:
        version = int(rows.version.max())
    hit = rows[rows.version == version]
    if hit.empty:
        have = ", ".join(str(v) for v in rows.version)
        raise StageError(f"models: {name!r} has no version {version} (versions: {have})")
    return _entry(hit.iloc[0].to_dict())


def set_alias(wh: Warehouse, name: str, alias: str, version: int) -> None:
    """Point ``alias`` of ``name`` at ``version`` (moving it from any other version)."""
    get(wh, name, version)
    wh.ensure_schema(SCHEMA)
    row = pd.DataFrame(
        [
            {
                "name": name,
                "alias": alias,
                "version": int(version),
                "set_at": pd.Timestamp.now(tz="UTC"),
            }
        ]
    )
    with wh.transaction():
        wh.delete_where(SCHEMA, "aliases", f"name = '{name}' AND alias = '{alias}'")
        wh.put(SCHEMA, "aliases", row, append=True)


def load(root: Path, entry: Entry) -> Any:
    """The fitted model object of a registry entry."""
    path = entry.folder(root) / "model.joblib"
    if not path.exists():
        raise StageError(
            f"models: the artefact of {entry.name} v{entry.version} is missing: {path}"
        )
    return joblib.load(path)


def summary(root: Path, entry: Entry) -> dict[str, Any]:
    path = entry.folder(root) / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
