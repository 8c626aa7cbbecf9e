"""Publishing the serving snapshot: what the real-time service answers from.

The service never opens the warehouse per request (DuckDB has one writer, and
``custintel run`` must go on while the service serves). ``custintel publish`` writes one
Arrow IPC file per snapshot, one row per customer: the latest features, every champion
propensity model's score with decile, tier and reasons, the segment and the CLV, with a
manifest beside it (model versions, decile cut-offs, segment averages for fallbacks).
The file is memory-mapped by each worker, so several workers share one copy in memory.
The ``CURRENT`` file names the live snapshot; it is replaced by a rename, which a running
server notices and swaps to without a restart.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from custintel.core import registry
from custintel.core.errors import StageError
from custintel.features.build import params_for, version_of
from custintel.models.scoring import decile_cutoffs
from custintel.pipeline.parts import ProjectParts

CUSTOMERS = "customers.arrow"
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
CHAMPION = "champion"
SCORE_FIELDS = ("score", "decile", "tier", "reasons")
CLV_FIELDS = ("p_alive", "expected_purchases", "expected_spend", "clv")


def serving_dir(project_dir: Path) -> Path:
    return project_dir / "serving"


def current_snapshot(project_dir: Path) -> Path | None:
    """The live snapshot's folder, or None before the first publish."""
    pointer = serving_dir(project_dir) / CURRENT
    if not pointer.exists():
        return None
    return serving_dir(project_dir) / "snapshots" / pointer.read_text(encoding="utf-8").strip()


def _latest(t: ibis.Table, version: int | None = None) -> ibis.Table:
    """The rows of the latest date (of one model version when given)."""
    if version is not None:
        t = t.filter(t.model_version == version)
    last = t.as_of.max().to_pyarrow().as_py()
    return t.filter(t.as_of == last)


class ServingTasks(ProjectParts):
    """Serving methods of :class:`~custintel.pipeline.project.Project`."""

    def _published_models(self) -> dict[str, registry.Entry]:
        """Propensity models with a scores table: the champion, else the latest."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            return {}
        out = {}
        names = registry.versions(wh)
        for name in sorted(set(names[names.kind == "propensity"].name)):
            if not wh.exists("scores", name):
                continue
            try:
                out[name] = registry.get(wh, name, alias=CHAMPION)
            except StageError:
                out[name] = registry.get(wh, name)
        return out

    def publish(self, keep: int = 3) -> dict[str, Any]:
        """Write a new serving snapshot and make it the live one."""
        wh = self.warehouse
        start = time.perf_counter()
        if not wh.exists("features", "customer"):
            raise StageError(
                "publish: no stored features yet; run the features stage "
                "(`custintel run` or `custintel features build`) first"
            )
        _, fs_version = version_of(params_for(wh, self.config))
        feats = wh.table("features", "customer")
        feats = _latest(feats.filter(feats.feature_set_version == fs_version))
        as_of = feats.as_of.max().to_pyarrow().as_py()
        if as_of is None:
            raise StageError(
                f"publish: no features of the current feature set (version {fs_version}); "
                "run the features stage first"
            )
        skip = ("customer_id", "as_of", "feature_set_version")
        numeric = [
            c for c, t in feats.schema().items()
            if c not in skip and (t.is_numeric() or t.is_boolean())
        ]  # fmt: skip
        text = [c for c, t in feats.schema().items() if c not in skip and t.is_string()]
        base = feats.select("customer_id", *numeric, *text)
        manifest: dict[str, Any] = {
            "features": numeric,
            "categorical": text,
            "features_as_of": str(as_of),
            "feature_set_version": fs_version,
        }
        models: dict[str, Any] = {}
        for name, entry in self._published_models().items():
            t = wh.table("scores", name)
            if t.filter(t.model_version == entry.version).count().execute() == 0:
                continue
            s = _latest(t, entry.version)
            s_as_of = s.as_of.max().to_pyarrow().as_py()
            s = s.select("customer_id", **{f"{name}__{f}": s[f] for f in SCORE_FIELDS})
            base = base.left_join(s, "customer_id").drop("customer_id_right")
            models[name] = {
                "version": entry.version,
                "as_of": str(s_as_of),
                "artifact": entry.artifact,
                "path": os.path.relpath(entry.folder(self.artifacts_dir), self.dir),
                "algorithm": entry.algorithm,
            }
        segments: dict[str, Any] | None = None
        if wh.exists("segments", "assignments"):
            a = wh.table("segments", "assignments")
            a = _latest(a, int(a.model_version.max().execute()))
            segments = {
                "as_of": str(a.as_of.max().to_pyarrow().as_py()),
                "model_version": int(a.model_version.max().execute()),
            }
            base = base.left_join(
                a.select("customer_id", "segment_id", "segment_name"), "customer_id"
            ).drop("customer_id_right")
        clv: dict[str, Any] | None = None
        if wh.exists("scores", "clv"):
            c = wh.table("scores", "clv")
            c = _latest(c, int(c.model_version.max().execute()))
            clv = {
                "as_of": str(c.as_of.max().to_pyarrow().as_py()),
                "model_version": int(c.model_version.max().execute()),
            }
            base = base.left_join(
                c.select("customer_id", *[c[f].name(f"clv__{f}") for f in CLV_FIELDS]),
                "customer_id",
            ).drop("customer_id_right")
        table = base.order_by("customer_id").to_pyarrow()
        if table.num_rows == 0:
            raise StageError(f"publish: the features as of {as_of} have no customers")
        # cut-offs from the published scores, so a visitor scored live gets the decile the
        # batch would have given them
        for name, info in models.items():
            col = table.column(f"{name}__score").to_numpy(zero_copy_only=False)
            col = col[~np.isnan(col)]
            info["cutoffs"] = decile_cutoffs(col) if len(col) else []
            info["mean_score"] = float(col.mean()) if len(col) else None
        manifest["models"] = models
        manifest["ranges"] = {}
        for c in manifest["features"]:
            bounds = pc.min_max(table.column(c)).as_py()
            if bounds["min"] is not None:
                manifest["ranges"][c] = [float(bounds["min"]), float(bounds["max"])]
        manifest["segments"] = segments
        manifest["clv"] = clv
        manifest["fallbacks"] = _segment_averages(table, list(models))
        return self._write_snapshot(table, manifest, keep, start)

    def _write_snapshot(
        self, table: pa.Table, manifest: dict[str, Any], keep: int, start: float
    ) -> dict[str, Any]:
        root = serving_dir(self.dir)
        snaps = root / "snapshots"
        snaps.mkdir(parents=True, exist_ok=True)
        done = sorted(int(p.name[1:]) for p in snaps.glob("v*") if p.name[1:].isdigit())
        version = (done[-1] if done else 0) + 1
        folder = snaps / f"v{version:06d}"
        work = snaps / f".v{version:06d}.{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        with (
            pa.OSFile(str(work / CUSTOMERS), "wb") as sink,
            pa.ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table, max_chunksize=table.num_rows)
        manifest = {
            "version": version,
            "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "published_epoch": time.time(),
            "customers": table.num_rows,
            **manifest,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(work, folder)
        pointer = root / f".{CURRENT}.{os.getpid()}"
        pointer.write_text(folder.name, encoding="utf-8")
        os.replace(pointer, root / CURRENT)  # the swap: one rename
        for old in [snaps / f"v{v:06d}" for v in done[: max(len(done) + 1 - keep, 0)]]:
            shutil.rmtree(old, ignore_errors=True)
        return {
            "version": version,
            "folder": str(folder),
            "customers": table.num_rows,
            "models": {k: v["version"] for k, v in manifest["models"].items()},
            "features": len(manifest["features"]),
            "seconds": round(time.perf_counter() - start, 2),
        }


def _segment_averages(table: pa.Table, models: list[str]) -> dict[str, Any]:
    """Each score's and the CLV's average overall and by segment: the answer for a
    customer the snapshot has no score for."""
    cols = [f"{m}__score" for m in models] + (
        ["clv__clv"] if "clv__clv" in table.column_names else []
    )
    out: dict[str, Any] = {"overall": {}, "by_segment": {}}
    for c in cols:
        mean = pc.mean(table.column(c)).as_py()
        out["overall"][c] = mean
    if "segment_id" in table.column_names and cols:
        grouped = table.group_by("segment_id").aggregate([(c, "mean") for c in cols])
        for row in grouped.to_pylist():
            if row["segment_id"] is None:
                continue
            out["by_segment"][str(row["segment_id"])] = {c: row[f"{c}_mean"] for c in cols}
        counts = table.group_by(["segment_id", "segment_name"]).aggregate([("segment_id", "count")])
        for row in counts.to_pylist():
            if row["segment_id"] is not None:
                out.setdefault("counts", {})[str(row["segment_id"])] = row["segment_id_count"]
                out.setdefault("names", {})[str(row["segment_id"])] = row["segment_name"]
    return out
