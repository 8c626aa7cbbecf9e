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
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from custintel.core import eventlog, registry
from custintel.core.config import ProjectConfig
from custintel.core.errors import StageError
from custintel.core.eventstream import RedisEvents
from custintel.features.build import params_for, version_of
from custintel.models.scoring import decile_cutoffs
from custintel.pipeline.campaign_context import customer_context
from custintel.pipeline.campaign_tasks import NBA, plan_for
from custintel.pipeline.parts import Progress as StageProgress
from custintel.pipeline.parts import ProjectParts, StageResult
from custintel.pipeline.segment_tasks import ACTIVE, SEGMENT_MODEL

CUSTOMERS = "customers.arrow"
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
NBA_CONTEXT = "nba.arrow"
CARRIED = "events.jsonl"
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


def event_stream(config: ProjectConfig) -> RedisEvents | None:
    """The Redis event stream of a project configured for several instances."""
    cfg = config.serving
    if not cfg.redis_url:
        return None
    return RedisEvents(cfg.redis_url, cfg.redis_prefix or f"custintel:{config.name}")


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

    def events_flush(self, grace_s: float = 1.0) -> dict[str, Any]:
        """Move the events the service recorded into ``serving.events`` (see
        :mod:`custintel.core.eventlog`); safe to interrupt and to run twice."""
        folder = eventlog.events_dir(self.dir)
        if eventlog.rotate(folder) is not None:
            time.sleep(grace_s)  # a worker's write begun before the rename lands in it
        pending = eventlog.batches(folder)
        read = added = 0
        for batch in pending:
            events = eventlog.read_batch(batch)
            read += len(events)
            added += self._insert_events(events)
            eventlog.mark_flushed(batch)
        stream = self.event_stream()
        if stream is not None:  # several instances: their events are in Redis
            last = stream.flushed_through()
            while page := stream.after(last):
                read += len(page)
                added += self._insert_events([e for _, e in page])
                last = page[-1][0]
                stream.mark_flushed(last)  # after the insert: a crash re-reads, no loss
        return {"batches": len(pending), "events": read, "added": added}

    def event_stream(self) -> RedisEvents | None:
        """The project's Redis event stream, when ``serving.redis_url`` is set."""
        return event_stream(self.config)

    def _insert_events(self, events: list[dict[str, Any]]) -> int:
        """Add the events not already in ``serving.events``; how many were new."""
        if not events:
            return 0
        wh = self.warehouse
        frame = pd.DataFrame(events).reindex(columns=list(eventlog.COLUMNS))
        frame = frame.drop_duplicates("event_id")
        for c in ("received_at", "ts"):
            frame[c] = pd.to_datetime(frame[c], utc=True, format="ISO8601")
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
        for c, kind in eventlog.COLUMNS.items():
            if kind == "string":
                frame[c] = frame[c].astype("string")
        wh.ensure_schema("serving")
        with wh.transaction():
            if wh.exists("serving", "events"):
                t = wh.table("serving", "events")
                since = frame.received_at.min() - pd.Timedelta(days=1)
                have = t.filter(t.received_at >= since.to_pydatetime()).event_id.execute()
                frame = frame[~frame.event_id.isin(set(have))]
            if len(frame):
                wh.put("serving", "events", frame, append=wh.exists("serving", "events"))
        return len(frame)

    def _active_segmentation(self) -> int | None:
        """The segmentation the segment stage treats as live (its ``active`` alias), not
        merely the newest fitted."""
        if not self.warehouse.exists("models", "registry"):
            return None
        try:
            return registry.get(self.warehouse, SEGMENT_MODEL, alias=ACTIVE).version
        except StageError:
            return None

    def _latest_rows(
        self, schema: str, name: str, version: int | None = None
    ) -> tuple[ibis.Table, dict[str, Any]] | None:
        """A stored table's rows of one model version (the newest when None) on its
        latest date, and where they came from; None when the table is not there."""
        wh = self.warehouse
        if not wh.exists(schema, name):
            return None
        t = wh.table(schema, name)
        if version is None:
            version = int(t.model_version.max().execute())
        t = _latest(t, version)
        return t, {"as_of": str(t.as_of.max().to_pyarrow().as_py()), "model_version": version}

    def publish(self, keep: int = 3) -> dict[str, Any]:
        """Write a new serving snapshot and make it the live one."""
        wh = self.warehouse
        start = time.perf_counter()
        self.events_flush()
        included = [p.name for p in eventlog.flushed(eventlog.events_dir(self.dir))]
        stream = self.event_stream()
        through = stream.flushed_through() if stream is not None else None
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
            "segments": None,
            "clv": None,
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
        segments = self._latest_rows("segments", "assignments", self._active_segmentation())
        if segments is not None:
            a, manifest["segments"] = segments
            base = base.left_join(
                a.select("customer_id", "segment_id", "segment_name"), "customer_id"
            ).drop("customer_id_right")
        clv = self._latest_rows("scores", "clv")
        if clv is not None:
            c, manifest["clv"] = clv
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
        manifest["fallbacks"] = _segment_averages(table, list(models))
        catalog = self.features_catalog()  # type: ignore[attr-defined]
        manifest["descriptions"] = dict(zip(catalog.name, catalog.description, strict=True))
        nba = self._nba_context(as_of)
        manifest["nba"] = nba[2] if nba else None
        manifest["events"] = {"included": included, "stream_through": through}
        out = self._write_snapshot(table, manifest, keep, start, nba)
        for name in included:  # in the warehouse, and held by the live snapshot
            (eventlog.events_dir(self.dir) / name).unlink(missing_ok=True)
        if stream is not None and through is not None:
            stream.trim_through(through)
        return out

    def _nba_context(self, as_of: dt.date) -> tuple[pd.DataFrame, list[dict], dict] | None:
        """What the next-best action decides from, for every customer, as of the features'
        date (:func:`~custintel.pipeline.campaign_context.customer_context`, the campaign
        engine's own), and the service's events after that date, which it cannot hold."""
        cfg = self.config
        if not cfg.offers:
            return None
        plan = plan_for(cfg, NBA)
        features = self._features_or_none(as_of)  # type: ignore[attr-defined]
        ctx, versions = customer_context(self.warehouse, cfg, self.dir, plan, as_of, features)
        missing = [k for k in plan.labels() if versions.get(k) is None]
        if missing or ctx.empty:
            return None
        carried: list[dict[str, Any]] = []
        if self.warehouse.exists("serving", "events"):
            e = self.warehouse.table("serving", "events")
            midnight = dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.UTC)
            e = e.filter(e.kind.isin(("consent", "contact")) & (e.ts >= midnight))
            frame = e.execute()
            for c in ("received_at", "ts"):
                frame[c] = frame[c].map(lambda v: v.isoformat())
            carried = json.loads(frame.to_json(orient="records"))
        info = {
            "as_of": str(as_of),
            "customers": len(ctx),
            "model_versions": versions,
            "carried_events": len(carried),
        }
        return ctx, carried, info

    def _write_snapshot(
        self,
        table: pa.Table,
        manifest: dict[str, Any],
        keep: int,
        start: float,
        nba: tuple[pd.DataFrame, list[dict], dict] | None,
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
        if nba is not None:
            ctx, carried, _ = nba
            feather.write_feather(ctx, work / NBA_CONTEXT, compression="uncompressed")
            lines = "".join(json.dumps(e, default=str) + "\n" for e in carried)
            (work / CARRIED).write_text(lines, encoding="utf-8")
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
    if "segment_id" in table.column_names:
        grouped = table.group_by(["segment_id", "segment_name"]).aggregate(
            [("segment_id", "count"), *[(c, "mean") for c in cols]]
        )
        for row in grouped.to_pylist():
            if row["segment_id"] is None:
                continue
            key = str(row["segment_id"])
            out.setdefault("counts", {})[key] = row["segment_id_count"]
            out.setdefault("names", {})[key] = row["segment_name"]
            if cols:
                out["by_segment"][key] = {c: row[f"{c}_mean"] for c in cols}
    return out


def run_stage(project: Any, run_id: str, progress: StageProgress | None) -> StageResult:
    """The ``serving`` stage of ``custintel run``: the events the service recorded moved
    into the warehouse, then a new serving snapshot that running servers swap to."""
    if not project.warehouse.exists("features", "customer"):
        return StageResult("serving", "skipped", "no stored features to publish")
    out = project.publish(keep=project.config.serving.keep_snapshots)
    models = ", ".join(f"{k} v{v}" for k, v in out["models"].items()) or "no models"
    return StageResult(
        "serving",
        "ok",
        f"snapshot v{out['version']}: {out['customers']:,} customers, {models}",
        out,
    )
