"""Propensity-model tasks of a project: train, evaluate, compare, promote, score."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from custintel.core import registry
from custintel.core.errors import StageError
from custintel.core.lineage import new_run_id
from custintel.features.build import (
    check_as_of,
    default_as_of,
    events_for,
    params_for,
    record_projection,
    version_of,
)
from custintel.features.training import opted_out
from custintel.models import card
from custintel.models.compare import paired_bootstrap
from custintel.models.dataset import check_scoring_table, feature_frame
from custintel.models.dataset import prepare as prepare_dataset
from custintel.models.metrics import evaluate as evaluate_scores
from custintel.models.metrics import threshold_table
from custintel.models.scoring import score_customers
from custintel.models.train import Progress, Trained
from custintel.models.train import train as train_model
from custintel.pipeline.parts import Progress as StageProgress
from custintel.pipeline.parts import ProjectParts, StageResult
from custintel.segments.fit import data_hash

CHAMPION = "champion"


def _files(trained: Trained) -> dict[str, bytes]:
    """Artefacts saved beside the native model: the ONNX graph when there is one."""
    return {} if trained.onnx is None else {"model.onnx": trained.onnx}


class ModelTasks(ProjectParts):
    """Propensity-model methods of :class:`~custintel.pipeline.project.Project`."""

    # -- propensity models ---------------------------------------------------------------
    def model_train(
        self, label: str, *, force: bool = False, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Train, calibrate and evaluate out of time a model of ``features.train_<label>``,
        registered as a new version of the model named ``label``; when the latest version
        was trained on the same rows with the same settings it is kept unless ``force``."""
        wh = self.warehouse
        table = f"train_{label}"
        if not wh.exists("features", table):
            raise StageError(
                f"models: no training table features.{table}; build it with "
                f"`custintel features training-set --label {label}`"
            )
        frame = wh.table("features", table).execute()
        if frame.empty:
            raise StageError(f"models: features.{table} is empty")
        params = self.config.models.model_dump(mode="json")
        rows_hash = data_hash(frame, sorted(frame.columns))
        if not force:
            try:
                last: registry.Entry | None = registry.get(wh, label)
            except StageError:
                last = None
            if (
                last is not None
                and last.data_hash == rows_hash
                and last.params == json.loads(json.dumps(params, sort_keys=True))
            ):
                return self._train_result(last, registry.summary(self.artifacts_dir, last), True)
        trained = train_model(prepare_dataset(frame), label, self.config.models, progress=progress)
        s = trained.summary
        dates = [*s["split"]["train"], s["split"]["validation"], s["split"]["test"]]
        metrics = {k: v for k, v in s["test"].items() if k != "rows"}
        entry = registry.register(
            wh,
            self.artifacts_dir,
            name=label,
            kind="propensity",
            algorithm=s["algorithm"],
            model=trained.model,
            params=params,
            feature_set="customer",
            feature_set_version=str(frame.feature_set_version.iloc[0]),
            snapshots=dates,
            data_hash=rows_hash,
            metrics=metrics,
            summary=s,
            files=_files(trained),
        )
        written = self.model_card(label, entry.version)
        return {**self._train_result(entry, s, False), "card": str(written["html"])}

    def _read_table(self, path: Path) -> tuple[Path, pd.DataFrame]:
        """A table of your own (CSV, TSV or Parquet), relative to here or the project."""
        path = Path(path)
        if not path.is_absolute():
            path = (Path.cwd() / path) if path.exists() else self.dir / path
        if not path.exists():
            raise StageError(f"models: no table at {path}")
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            return path, pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return path, pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        raise StageError(
            f"models: {path.name}: read CSV or Parquet, not {suffix or 'no extension'}"
        )

    def score_table(
        self,
        name: str,
        path: Path,
        out: Path,
        *,
        id_column: str | None = None,
        version: int | None = None,
        use_onnx: bool = False,
    ) -> dict[str, Any]:
        """Score the rows of a table of the training table's schema with a model trained
        by ``model train NAME --table``: the latest version (or ``version``), natively or
        with its ONNX graph; ``out`` (CSV or Parquet) gets the id column, if named, and
        the score of every row, in the input's order."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            raise StageError(f"models: no model named {name!r} in the registry")
        entry = registry.get(wh, name, version=version)
        if not str(entry.feature_set).startswith("table:"):
            raise StageError(
                f"models: {name} was trained on the warehouse features; score it with "
                f"`custintel score {name} --as-of DATE`"
            )
        path, frame = self._read_table(path)
        model = registry.load(self.artifacts_dir, entry)
        if id_column is not None and id_column not in frame:
            raise StageError(f"models: {path.name} has no column {id_column!r} to pass through")
        check_scoring_table(frame, model.features, model.categories, path.name)
        X = feature_frame(frame, model.features, model.categories)
        if use_onnx:
            from custintel.models import onnx as onnx_export

            graph = entry.folder(self.artifacts_dir) / "model.onnx"
            if not graph.exists():
                raise StageError(f"models: {name} v{entry.version} has no ONNX graph")
            session = onnx_export.session(graph.read_bytes())
            scores = onnx_export.predict(session, X)
        else:
            scores = model.predict(X)
        result = pd.DataFrame({"score": np.round(scores, 6)})
        if id_column is not None:
            result.insert(0, id_column, frame[id_column].to_numpy())
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".parquet":
            result.to_parquet(out, index=False)
        else:
            result.to_csv(out, index=False)
        return {
            "model": name,
            "version": entry.version,
            "engine": "onnx" if use_onnx else "native",
            "rows": len(result),
            "mean_score": float(result.score.mean()) if len(result) else float("nan"),
            "out": str(out),
        }

    def model_train_table(
        self,
        name: str,
        path: Path,
        target: str,
        *,
        time_column: str | None = None,
        positive: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Train on a prepared table of your own (CSV or Parquet) with the same validation,
        calibration, evaluation and registry; by time when ``time_column`` is given. The
        target may be spelled 0/1, true/false, T/F, yes/no, or its ``positive`` value
        named."""
        path, frame = self._read_table(path)
        ds = prepare_dataset(
            frame, target=target, time=time_column, id_column="", positive=positive
        )
        trained = train_model(ds, name, self.config.models, progress=progress)
        s = {**trained.summary, "table": str(path.name), "target": target, "leaks": ds.leaks}
        split = s["split"]
        columns = ",".join(sorted(map(str, frame.columns)))
        entry = registry.register(
            self.warehouse,
            self.artifacts_dir,
            name=name,
            kind="propensity",
            algorithm=s["algorithm"],
            model=trained.model,
            params=self.config.models.model_dump(mode="json"),
            feature_set=f"table:{path.name}",
            feature_set_version=hashlib.sha256(columns.encode()).hexdigest()[:12],
            snapshots=[*split["train"], split["validation"], split["test"]],
            data_hash=data_hash(frame, sorted(frame.columns)),
            metrics={k: v for k, v in s["test"].items() if k != "rows"},
            summary=s,
            files=_files(trained),
        )
        written = self.model_card(name, entry.version)
        return {
            **self._train_result(entry, s, False),
            "leaks": ds.leaks,
            "card": str(written["html"]),
        }

    def model_card(self, label: str, version: int | None = None) -> dict[str, Any]:
        """Write (again) the Markdown and HTML model card of a version (the champion, else
        the latest, by default) into its artefact folder."""
        entry = self._propensity_entry(label, version)
        s = registry.summary(self.artifacts_dir, entry)
        info = {**dataclasses.asdict(entry), "created_at": f"{entry.created_at:%Y-%m-%d %H:%M} UTC"}
        gates = self.config.models.gates
        folder = entry.folder(self.artifacts_dir)
        (folder / "card.md").write_text(card.markdown(info, s, gates), encoding="utf-8")
        (folder / "card.html").write_text(card.to_html(info, s, gates), encoding="utf-8")
        return {
            "name": label,
            "version": entry.version,
            "markdown": folder / "card.md",
            "html": folder / "card.html",
        }

    @staticmethod
    def _train_result(entry: registry.Entry, s: dict[str, Any], unchanged: bool) -> dict[str, Any]:
        return {
            "name": entry.name,
            "version": entry.version,
            "unchanged": unchanged,
            "algorithm": s["algorithm"],
            "chosen_because": s["chosen_because"],
            "split": s["split"],
            "rows": s["rows"],
            "candidates": s["candidates"],
            "test": s["test"],
            "notes": s["notes"],
            "tuning": None
            if not s.get("tuning")
            else {k: v for k, v in s["tuning"].items() if k != "trials"}
            | {"trials": len(s["tuning"]["trials"])},
            "imbalance": s.get("imbalance", []),
            "onnx": s.get("onnx"),
            "calibration": s.get("calibration"),
            "estimate": s.get("estimate"),
        }

    def _snapshot_rows(self, label: str, as_of: dt.date) -> pd.DataFrame:
        wh = self.warehouse
        table = f"train_{label}"
        if not wh.exists("features", table):
            raise StageError(f"models: no training table features.{table}")
        t = wh.table("features", table)
        rows = t.filter(t.as_of == ibis.literal(as_of)).execute()
        if rows.empty:
            have = ", ".join(str(d)[:10] for d in t.as_of.cast("string").to_pandas().unique())
            raise StageError(
                f"models: features.{table} has no rows as of {as_of} (it has {have}); "
                "add the date to the snapshots and rebuild it"
            )
        return rows

    def model_evaluate(self, label: str, version: int, as_of: dt.date) -> dict[str, Any]:
        """A version's figures on the rows of ``features.train_<label>`` as of a date, with
        a warning when the version learned from that date (then it is not out of time)."""
        entry = registry.get(self.warehouse, label, version)
        model = registry.load(self.artifacts_dir, entry)
        rows = self._snapshot_rows(label, as_of)
        p = model.predict_frame(rows)
        learned = as_of.isoformat() in entry.snapshots[:-1]
        return {
            "name": label,
            "version": version,
            "as_of": as_of.isoformat(),
            "out_of_time": not learned,
            "warning": (
                f"v{version} trained or was calibrated on {as_of}: these figures are not out of time"
                if learned
                else None
            ),
            "metrics": evaluate_scores(rows.label.to_numpy(), p),
        }

    def model_compare(self, label: str, challenger: int | None = None) -> dict[str, Any]:
        """Champion against a challenger (default: the latest other version) on the
        challenger's out-of-time snapshot, by a paired bootstrap of the AUC difference."""
        wh = self.warehouse
        try:
            champ = registry.get(wh, label, alias=CHAMPION)
        except StageError:
            raise StageError(f"models: {label} has no champion to compare with") from None
        if challenger is None:
            others = registry.versions(wh, label)
            others = others[others.version != champ.version]
            if others.empty:
                raise StageError(
                    f"models: {label} has no version besides the champion v{champ.version}"
                )
            challenger = int(others.version.max())
        chal = registry.get(wh, label, challenger)
        day = dt.date.fromisoformat(chal.snapshots[-1])
        if day.isoformat() in champ.snapshots[:-1]:
            raise StageError(
                f"models: the champion v{champ.version} learned from {day}, the challenger's "
                "test snapshot; they cannot be compared fairly there"
            )
        rows = self._snapshot_rows(label, day)
        a = registry.load(self.artifacts_dir, champ).predict_frame(rows)
        b = registry.load(self.artifacts_dir, chal).predict_frame(rows)
        result = paired_bootstrap(
            rows.label.to_numpy(),
            a,
            b,
            rounds=self.config.models.bootstrap_rounds,
            seed=self.config.models.seed,
        )
        return {
            "name": label,
            "champion": champ.version,
            "challenger": chal.version,
            "as_of": day.isoformat(),
            **result,
        }

    def model_promote(self, label: str, version: int) -> dict[str, Any]:
        """Make ``version`` the champion of ``label`` if its out-of-time figures meet every
        gate in ``models.gates`` (promoting an older version is a rollback)."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            raise StageError(f"models: no model named {label!r} in the registry")
        entry = registry.get(wh, label, version)
        failed = [
            f"{metric} {entry.metrics.get(metric, float('nan')):.4f} < {least}"
            for metric, least in self.config.models.gates.items()
            if not entry.metrics.get(metric, float("-inf")) >= least
        ]
        if failed:
            raise StageError(
                f"models: {label} v{version} is not promoted: out of time "
                + ", ".join(failed)
                + " (models.gates)"
            )
        try:
            before: int | None = registry.get(wh, label, alias=CHAMPION).version
        except StageError:
            before = None
        comparison = None
        if before is not None and version > before:
            # a newer version replaces the champion only when it is shown better;
            # promoting an older version is a rollback and needs only the gates
            comparison = self.model_compare(label, version)
            if not comparison["better"]:
                raise StageError(
                    f"models: {label} v{version} is not promoted: against the champion "
                    f"v{before} on {comparison['as_of']} its AUC differs by "
                    f"{comparison['difference']:+.4f} (95 % interval {comparison['ci_low']:+.4f} "
                    f"to {comparison['ci_high']:+.4f}), not better"
                )
        registry.set_alias(wh, label, CHAMPION, version)
        return {
            "name": label,
            "champion": version,
            "previous": before,
            "metrics": entry.metrics,
            "comparison": comparison,
        }

    def score(
        self,
        label: str,
        as_of: dt.date,
        *,
        version: int | None = None,
        progress: Progress | None = None,
        projection: bool = False,
    ) -> dict[str, Any]:
        """``scores.<label>``: every eligible customer's score as of a date with its decile,
        tier and top three reasons, by the champion (or ``version``); scoring a date again
        with the same version replaces its rows. A date after the data is refused unless
        ``projection`` (then recorded as one in ``ops.projections``)."""
        wh = self.warehouse
        last = check_as_of(wh, self.config, as_of, "score", projection=projection)
        if not wh.exists("models", "registry"):
            raise StageError(f"models: no model named {label!r} in the registry")
        latest = registry.get(wh, label, version=version)
        if str(latest.feature_set).startswith("table:"):
            raise StageError(
                f"models: {label} v{latest.version} was trained on your own table "
                f"({latest.feature_set[6:]}); score new rows of that schema with "
                f"`custintel score {label} --table FILE --out FILE`"
            )
        try:
            entry = registry.get(wh, label, version=version, alias=None if version else CHAMPION)
        except StageError as exc:
            if version is None and "no 'champion'" in str(exc):
                raise StageError(
                    f"models: {label} has no champion yet: promote a version "
                    f"(`custintel model promote {label} --version N`) or give --version"
                ) from None
            raise
        if entry.kind != "propensity":
            raise StageError(f"models: {label} is a {entry.kind} model, not a propensity model")
        model = registry.load(self.artifacts_dir, entry)
        _, fs_version = version_of(params_for(wh, self.config))
        if entry.feature_set_version != fs_version:
            raise StageError(
                f"models: {label} v{entry.version} was trained on feature set version "
                f"{entry.feature_set_version}, the features are now version {fs_version}; "
                "retrain it"
            )
        frame = self.features_frame(as_of)
        if frame.empty:
            raise StageError(f"models: no customers existed before {as_of}")
        events, _ = events_for(wh, self.config)
        excluded = set(opted_out(events, as_of).execute().customer_id)
        catalog = self.features_catalog()
        words = dict(zip(catalog.name, catalog.description, strict=True))
        mc = self.config.models
        scored = score_customers(
            model,
            frame,
            words,
            chunk_rows=mc.chunk_rows,
            exact_reasons_rows=mc.exact_reasons_rows,
            seed=mc.seed,
            keep=~frame.customer_id.isin(excluded).to_numpy(),
            progress=progress,
            label=label,
        )
        score = scored.score
        out = scored.frame().assign(as_of=as_of, model_version=entry.version)[
            ["customer_id", "as_of", "score", "decile", "tier", "reasons", "model_version"]
        ]
        wh.ensure_schema("scores")
        with wh.transaction():
            wh.delete_where(
                "scores", label, f"as_of = DATE '{as_of}' AND model_version = {entry.version}"
            )
            wh.put("scores", label, out, append=True)
        if last is not None:
            record_projection(wh, f"scores.{label}", as_of, last, new_run_id())
        return {
            "projection": last is not None,
            "name": label,
            "version": entry.version,
            "as_of": as_of.isoformat(),
            "customers": len(out),
            "opted_out": len(excluded),
            "mean_score": float(score.mean()) if len(score) else None,
            "reasons": scored.reasons_method,
            "reason_agreement": scored.reason_agreement,
            "reason_sample": scored.reason_sample,
            "table": f"scores.{label}",
        }

    def _propensity_entry(self, label: str, version: int | None) -> registry.Entry:
        """The given version, else the champion, else the latest."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            raise StageError(f"models: no model named {label!r} in the registry")
        if version is not None:
            return registry.get(wh, label, version)
        try:
            return registry.get(wh, label, alias=CHAMPION)
        except StageError:
            return registry.get(wh, label)

    def model_threshold(
        self,
        label: str,
        *,
        cost: float | None = None,
        value: float | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """What contacting the top share of customers would cost and return, from the
        out-of-time test of a version (the champion by default)."""
        entry = self._propensity_entry(label, version)
        sample = registry.summary(self.artifacts_dir, entry).get("test_sample")
        if not sample:
            raise StageError(f"models: {label} v{entry.version} has no stored test scores")
        mc = self.config.models
        cost = mc.cost_per_contact if cost is None else cost
        value = mc.value_per_success if value is None else value
        table = threshold_table(
            np.array(sample["y"]), np.array(sample["p"]), cost=cost, value=value
        )
        return {
            "name": label,
            "version": entry.version,
            "cost_per_contact": cost,
            "value_per_success": value,
            "customers": len(sample["y"]),
            "rows": table.to_dict(orient="records"),
        }

    def models_summary(self) -> list[dict[str, Any]]:
        """What the report shows per propensity model: the champion (or latest) version's
        training summary, its threshold table and every version."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            return []
        versions = registry.versions(wh)
        versions = versions[versions.kind == "propensity"]
        out = []
        for name in sorted(versions.name.unique()):
            entry = self._propensity_entry(name, None)
            out.append(
                {
                    "entry": entry,
                    "summary": registry.summary(self.artifacts_dir, entry),
                    "threshold": self.model_threshold(name, version=entry.version),
                    "versions": versions[versions.name == name],
                }
            )
        return out

    def model_list(self) -> pd.DataFrame:
        """Every registered model version with its aliases and headline metrics."""
        return registry.versions(self.warehouse)


def run_stage(project: Any, run_id: str, progress: StageProgress | None) -> StageResult:
    """The ``models`` stage of ``custintel run``."""
    fc = project.config.features
    if not fc.snapshots:
        return StageResult(
            "models",
            "skipped",
            "no features.snapshots, so no training tables to learn from",
        )
    parts, detail = [], []
    as_of = default_as_of(project.warehouse, project.config)
    for label in project.config.models.labels:
        if not project.warehouse.exists("features", f"train_{label}"):
            project.features_training_set(label, run_id=run_id)
        r = project.model_train(label, progress=progress)
        t = r["test"]
        text = ("unchanged " if r["unchanged"] else "") + (
            f"{label} v{r['version']} {r['algorithm']}: out-of-time AUC {t['auc']:.3f}, "
            f"top-decile lift {t['top_decile_lift']:.2f}, ECE {t['ece']:.3f}"
        )
        try:
            champion = registry.get(project.warehouse, label, alias=CHAMPION).version
        except StageError:
            champion = None
        if champion is None:
            try:
                project.model_promote(label, r["version"])
                champion = r["version"]
                text += "; promoted to champion"
            except StageError as exc:
                text += f"; {exc}"
        if champion is not None:
            sc = project.score(label, as_of, version=champion, progress=progress)
            text += f"; {sc['customers']:,} scored as of {sc['as_of']} by v{champion}"
        parts.append(text)
        detail.append(r)
    return StageResult("models", "ok", "; ".join(parts), {"models": detail})
