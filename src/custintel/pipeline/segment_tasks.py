"""Segmentation tasks of a project: fit, assign, compare, export rules, summarise."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import ibis
import pandas as pd
from pydantic import ValidationError

from custintel.core import registry
from custintel.core.errors import ConfigError, NotEnoughDataError, StageError
from custintel.features.build import (
    check_as_of,
    default_as_of,
    events_for,
    params_for,
    version_of,
)
from custintel.features.training import opted_out
from custintel.pipeline.parts import Progress as StageProgress
from custintel.pipeline.parts import ProjectParts, StageResult
from custintel.segments.fit import Progress as SegmentProgress
from custintel.segments.fit import data_hash, fit_segments
from custintel.segments.model import SegmentModel
from custintel.segments.validate import migration

SEGMENT_MODEL = "segments"
ACTIVE = "active"


class SegmentTasks(ProjectParts):
    """Segment methods of :class:`~custintel.pipeline.project.Project`."""

    def _segment_frame(self, as_of: dt.date) -> pd.DataFrame:
        frame = self.features_frame(as_of)
        if "segments" in self.config.consent.exclude_opted_out_from and len(frame):
            events, _ = events_for(self.warehouse, self.config)
            out = set(opted_out(events, as_of).execute().customer_id)
            frame = frame[~frame.customer_id.isin(out)].reset_index(drop=True)
        if frame.empty:
            raise StageError(f"segments: no customers existed before {as_of}")
        return frame

    def _write_assignments(self, out: pd.DataFrame, as_of: dt.date, version: int) -> None:
        wh = self.warehouse
        wh.ensure_schema("segments")
        rows = out.assign(as_of=as_of, model_version=version)[
            ["customer_id", "as_of", "segment_id", "segment_name", "model_version"]
        ]
        with wh.transaction():
            wh.delete_where(
                "segments",
                "assignments",
                f"as_of = DATE '{as_of}' AND model_version = {int(version)}",
            )
            wh.put("segments", "assignments", rows, append=True)

    def segment_fit(
        self,
        as_of: dt.date | None = None,
        *,
        method: str | None = None,
        k: int | None = None,
        force: bool = False,
        progress: SegmentProgress | None = None,
    ) -> dict[str, Any]:
        """Fit segments on the features as of a date, register the model as the active
        one and write every customer's segment to ``segments.assignments``. When the
        latest version was fitted on the same rows with the same settings it is kept
        (nothing new registered) unless ``force``."""
        wh = self.warehouse
        cfg = self.config.segments
        update: dict[str, Any] = {}
        if method is not None:
            update["method"] = method
        if k is not None:
            update["k"] = k
        try:
            cfg = cfg.model_validate({**cfg.model_dump(), **update}) if update else cfg
        except ValidationError as exc:
            raise ConfigError(
                "; ".join(
                    f"--{e['loc'][0]} {update.get(str(e['loc'][0]))!r}: {e['msg']}"
                    for e in exc.errors()
                )
            ) from None
        day = as_of or default_as_of(wh, self.config)
        check_as_of(wh, self.config, day, "segments")
        frame = self._segment_frame(day)
        _, fs_version = version_of(params_for(wh, self.config))
        same = None if force else self._same_segment_fit(frame, cfg, fs_version, day)
        if same is not None:
            return same
        fitted = fit_segments(
            frame,
            self.features_catalog(),
            cfg,
            version=fs_version,
            as_of=day.isoformat(),
            progress=progress,
        )
        s = fitted.summary
        metrics = {
            "k": s["k"],
            "customers": s["customers"],
            "clustered": s["clustered"],
            "surrogate_fidelity": s["surrogate"]["fidelity"],
        }
        if s.get("bootstrap"):
            metrics["bootstrap_ari"] = s["bootstrap"]["ari_mean"]
        chosen = [r for r in s.get("selection", []) if r["k"] == s["k"]]
        if chosen:
            metrics["silhouette"] = chosen[0]["silhouette"]
        entry = registry.register(
            wh,
            self.artifacts_dir,
            name=SEGMENT_MODEL,
            kind="segmentation",
            algorithm=cfg.method,
            model=fitted.model,
            params=cfg.model_dump(mode="json"),
            feature_set="customer",
            feature_set_version=fs_version,
            snapshots=[day.isoformat()],
            data_hash=fitted.data_hash,
            metrics=metrics,
            summary=s,
        )
        registry.set_alias(wh, SEGMENT_MODEL, ACTIVE, entry.version)
        self._write_assignments(fitted.assignments, day, entry.version)
        sizes = fitted.assignments.segment_name.value_counts()
        return {
            "version": entry.version,
            "as_of": day.isoformat(),
            "method": cfg.method,
            "k": s["k"],
            "reason": s["reason"],
            "customers": s["customers"],
            "clustered": s["clustered"],
            "metrics": metrics,
            "segments": {str(n): int(c) for n, c in sizes.items()},
            "merges": s.get("merges", []),
            "seconds": s.get("seconds", {}),
            "unchanged": False,
        }

    def _same_segment_fit(
        self, frame: pd.DataFrame, cfg: Any, fs_version: str, day: dt.date
    ) -> dict[str, Any] | None:
        """The result of the latest version when it was fitted on exactly these rows with
        these settings (a rerun of ``run`` registers nothing new), else None."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            return None
        try:
            last = registry.get(wh, SEGMENT_MODEL)
        except StageError:
            return None
        columns = (
            ["rfm_recency_score", "rfm_frequency_score"]
            if cfg.method == "rfm"
            else list(cfg.features)
        )
        if (
            last.params != json.loads(json.dumps(cfg.model_dump(mode="json"), sort_keys=True))
            or last.feature_set_version != fs_version
            or last.snapshots != [day.isoformat()]
            or last.data_hash != data_hash(frame, [c for c in columns if c in frame])
        ):
            return None
        registry.set_alias(wh, SEGMENT_MODEL, ACTIVE, last.version)
        summary = registry.summary(self.artifacts_dir, last)
        model = registry.load(self.artifacts_dir, last)
        out = model.assign(frame)
        self._write_assignments(out, day, last.version)
        sizes = out.segment_name.value_counts()
        return {
            "version": last.version,
            "as_of": day.isoformat(),
            "method": last.algorithm,
            "k": summary.get("k"),
            "reason": summary.get("reason", ""),
            "customers": summary.get("customers"),
            "clustered": summary.get("clustered"),
            "metrics": last.metrics,
            "segments": {str(n): int(c) for n, c in sizes.items()},
            "merges": summary.get("merges", []),
            "unchanged": True,
        }

    def segment_model(self, version: int | None = None) -> tuple[registry.Entry, SegmentModel]:
        """The active segment model (or a given version) and its registry entry."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            raise StageError("segments: no segment model yet (run `custintel segment fit`)")
        entry = registry.get(wh, SEGMENT_MODEL, version=version, alias=None if version else ACTIVE)
        return entry, registry.load(self.artifacts_dir, entry)

    def segment_assign(self, as_of: dt.date, *, version: int | None = None) -> dict[str, Any]:
        """Place every customer as of a date with the fitted model (no refit)."""
        entry, model = self.segment_model(version)
        _, fs_version = version_of(params_for(self.warehouse, self.config))
        if model.feature_set_version != fs_version:
            raise StageError(
                f"segments: model v{entry.version} was fitted on feature set version "
                f"{model.feature_set_version}, the features are now version {fs_version}; "
                "refit with `custintel segment fit`"
            )
        out = model.assign(self._segment_frame(as_of))
        self._write_assignments(out, as_of, entry.version)
        sizes = out.segment_name.value_counts()
        return {
            "version": entry.version,
            "as_of": as_of.isoformat(),
            "customers": len(out),
            "segments": {str(n): int(c) for n, c in sizes.items()},
        }

    def _assignments(self, as_of: dt.date, version: int) -> pd.DataFrame:
        wh = self.warehouse
        if wh.exists("segments", "assignments"):
            t = wh.table("segments", "assignments")
            t = t.filter((t.as_of == ibis.literal(as_of)) & (t.model_version == version))
            found = t.execute()
            if len(found):
                return found
        self.segment_assign(as_of, version=version)
        return self._assignments(as_of, version)

    def segment_compare(
        self, start: dt.date, end: dt.date, *, version: int | None = None
    ) -> dict[str, Any]:
        """Customers moving between segments from one as-of date to a later one, with the
        same model (assigning either date first when needed); stored in
        ``segments.migration``."""
        if end <= start:
            raise StageError(f"segments: --to {end} must come after --from {start}")
        entry, _ = self.segment_model(version)
        before = self._assignments(start, entry.version)
        after = self._assignments(end, entry.version)
        matrix = migration(before, after)
        long = matrix.stack().rename("customers").reset_index()
        long.columns = ["segment_from", "segment_to", "customers"]
        long = long.assign(model_version=entry.version, from_date=start, to_date=end)
        wh = self.warehouse
        with wh.transaction():
            wh.delete_where(
                "segments",
                "migration",
                f"model_version = {entry.version} AND from_date = DATE '{start}' "
                f"AND to_date = DATE '{end}'",
            )
            wh.put("segments", "migration", long, append=True)
        both = before.merge(after, on="customer_id", suffixes=("_from", "_to"))
        stayed = float((both.segment_id_from == both.segment_id_to).mean()) if len(both) else 0.0
        share_from = before.segment_name.value_counts(normalize=True)
        share_to = after.segment_name.value_counts(normalize=True)
        shares = pd.concat([share_from, share_to], axis=1, keys=["from", "to"]).fillna(0.0)
        return {
            "version": entry.version,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "customers_from": len(before),
            "customers_to": len(after),
            "in_both": len(both),
            "stayed": stayed,
            "shares": {
                str(n): {"from": float(r["from"]), "to": float(r["to"])}
                for n, r in shares.iterrows()
            },
            "matrix": {
                str(a): {str(b): int(v) for b, v in row.items()} for a, row in matrix.iterrows()
            },
        }

    def segment_rules(self, fmt: str = "sql", *, version: int | None = None) -> str:
        """The segment rules a CRM can run: SQL ``CASE``, readable text or JSON."""
        entry, model = self.segment_model(version)
        if fmt == "sql":
            return (
                f"-- custintel segments v{entry.version} ({entry.algorithm}, fitted as of "
                f"{entry.snapshots[0]}); columns of features.customer\n{model.to_sql()}"
            )
        if fmt == "text":
            return "\n".join(model.to_text())
        if fmt == "json":
            s = registry.summary(self.artifacts_dir, entry)
            return json.dumps(
                {
                    "version": entry.version,
                    "rules": model.to_text(),
                    "sql": model.to_sql(),
                    "surrogate": s.get("surrogate"),
                },
                indent=2,
            )
        raise StageError(f"segments: unknown rules format {fmt!r} (sql, text or json)")

    def segments_summary(self) -> dict[str, Any] | None:
        """What the report shows: the active model's fit summary, sizes over time and the
        last migration."""
        wh = self.warehouse
        if not (wh.exists("models", "registry") and wh.exists("segments", "assignments")):
            return None
        try:
            entry = registry.get(wh, SEGMENT_MODEL, alias=ACTIVE)
        except StageError:
            return None
        a = wh.table("segments", "assignments")
        a = a.filter(a.model_version == entry.version)
        sizes = a.group_by(["as_of", "segment_name"]).aggregate(customers=a.count()).execute()
        last = None
        if wh.exists("segments", "migration"):
            m = wh.table("segments", "migration").execute()
            m = m[m.model_version == entry.version]
            if len(m):
                pick = m.sort_values(["to_date", "from_date"]).iloc[-1]
                last = m[(m.from_date == pick.from_date) & (m.to_date == pick.to_date)]
        return {
            "entry": entry,
            "summary": registry.summary(self.artifacts_dir, entry),
            "sizes": sizes,
            "migration": last,
            "versions": registry.versions(wh, SEGMENT_MODEL),
        }


def run_stage(project: Any, run_id: str, progress: StageProgress | None) -> StageResult:
    """The ``segments`` stage of ``custintel run``."""
    try:
        r = project.segment_fit(progress=progress)
    except NotEnoughDataError as exc:
        return StageResult("segments", "skipped", str(exc))
    parts = [
        ("unchanged " if r["unchanged"] else "")
        + f"v{r['version']} {r['method']} as of {r['as_of']}: k={r['k']} on "
        f"{r['clustered']:,} of {r['customers']:,} customers; "
        + ", ".join(f"{n} {c:,}" for n, c in r["segments"].items())
    ]
    detail: dict[str, Any] = {"fit": r}
    earlier = [d for d in project.config.features.snapshots if d.isoformat() < r["as_of"]]
    if earlier:
        c = project.segment_compare(max(earlier), dt.date.fromisoformat(r["as_of"]))
        detail["compare"] = {k: v for k, v in c.items() if k != "matrix"}
        parts.append(f"{c['stayed']:.0%} stayed in their segment since {c['from']}")
    return StageResult("segments", "ok", "; ".join(parts), detail)
