"""Customer-lifetime-value tasks of a project: fit, validate on a holdout, score."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd

from custintel.clv.models import GammaGamma
from custintel.clv.summary import rfm_table
from custintel.clv.value import PURCHASE_MODELS, holdout_check, lifetime_value, purchase_model
from custintel.core import registry
from custintel.core.errors import StageError
from custintel.core.lineage import new_run_id
from custintel.features.build import check_as_of, default_as_of, events_for, record_projection
from custintel.features.events import as_of_day
from custintel.features.training import opted_out
from custintel.pipeline.parts import Progress as StageProgress
from custintel.pipeline.parts import ProjectParts, StageResult
from custintel.segments.fit import data_hash

CLV_MODEL = "clv"


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Features as doubles rounded far below any meaning: warehouse sums computed in
    parallel differ in the last bits from run to run, and LightGBM's splits with them."""
    return frame.astype("float64").round(9)


class ClvTasks(ProjectParts):
    """CLV methods of :class:`~custintel.pipeline.project.Project`."""

    def clv_summary(self, as_of: dt.date, holdout_days: int | None = None) -> pd.DataFrame:
        """Frequency, recency, age and repeat spend per customer from the purchases
        before ``as_of`` (and the holdout after it), computed in the warehouse."""
        events, _ = events_for(self.warehouse, self.config)
        orders = events.with_day().orders
        table = rfm_table(
            orders,
            as_of_day(as_of),
            unit_days=self.config.clv.unit_days,
            holdout_days=holdout_days,
        )
        frame = table.execute().sort_values("customer_id", ignore_index=True)
        if frame.empty:
            raise StageError(f"clv: no purchases before {as_of}")
        return frame

    @staticmethod
    def _usable(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """Customers whose first purchase was on the last day observed have no history
        yet (T = 0): left out, and counted."""
        keep = frame["T"] > 0
        return frame[keep].reset_index(drop=True), int((~keep).sum())

    def clv_fit(self, as_of: dt.date, *, model: str | None = None) -> dict[str, Any]:
        """Fit the purchase model (``clv.model`` unless given) and Gamma-Gamma on the
        customers' purchases before ``as_of``; registered as the model ``clv``."""
        check_as_of(self.warehouse, self.config, as_of, "clv")
        name = model or self.config.clv.model
        frame, new = self._usable(self.clv_summary(as_of))
        try:
            purchases = purchase_model(name).fit(frame.frequency, frame.recency, frame["T"])
            spend = GammaGamma().fit(frame.frequency, frame.monetary)
        except ValueError as exc:
            raise StageError(str(exc)) from None
        correlation = GammaGamma.independence(frame.frequency, frame.monetary)
        summary = {
            "as_of": as_of.isoformat(),
            "model": name,
            "unit_days": self.config.clv.unit_days,
            "customers": len(frame),
            "left_out_no_history": new,
            "repeat_buyers": int((frame.frequency > 0).sum()),
            "purchases": {
                "params": purchases.params_,
                "standard_errors": purchases.standard_errors_,
                "log_likelihood": purchases.log_likelihood_,
            },
            "spend": {
                "params": spend.params_,
                "standard_errors": spend.standard_errors_,
                "log_likelihood": spend.log_likelihood_,
                "frequency_spend_correlation": correlation,
            },
        }
        entry = registry.register(
            self.warehouse,
            self.artifacts_dir,
            name=CLV_MODEL,
            kind="clv",
            algorithm=f"{name}+gammagamma",
            model={"purchases": purchases, "spend": spend, "model": name},
            params=self.config.clv.model_dump(mode="json") | {"model": name},
            feature_set="purchases",
            feature_set_version="rfm",
            snapshots=[as_of.isoformat()],
            data_hash=data_hash(frame, ["customer_id", "frequency", "recency", "T", "monetary"]),
            metrics={"log_likelihood": purchases.log_likelihood_, **purchases.params_},
            summary=summary,
        )
        return {"version": entry.version, **summary}

    def clv_validate(self, calibration_end: dt.date, holdout_end: dt.date) -> dict[str, Any]:
        """Each purchase model fitted on the purchases up to ``calibration_end`` (the
        last day, inclusive) and judged on the repeat purchases up to ``holdout_end``."""
        if holdout_end <= calibration_end:
            raise StageError("clv: the holdout must end after the calibration period")
        as_of = calibration_end + dt.timedelta(days=1)
        days = (holdout_end - calibration_end).days
        frame, new = self._usable(self.clv_summary(as_of, holdout_days=days))
        out: dict[str, Any] = {
            "calibration_end": calibration_end.isoformat(),
            "holdout_end": holdout_end.isoformat(),
            "left_out_no_history": new,
            "periods": {
                "calibration": {
                    "customers": len(frame),
                    "purchases": int(len(frame) + frame.frequency.sum()),
                    "repeat_purchases": int(frame.frequency.sum()),
                },
                "holdout": {
                    "customers_buying": int((frame.holdout_frequency > 0).sum()),
                    "purchases": int(frame.holdout_frequency.sum()),
                },
            },
            "models": {},
        }
        for name in PURCHASE_MODELS:
            try:
                fitted = purchase_model(name).fit(frame.frequency, frame.recency, frame["T"])
            except ValueError as exc:
                raise StageError(str(exc)) from None
            out["models"][name] = {"params": fitted.params_, **holdout_check(fitted, frame)}
        try:
            out["spend"] = self._spend_comparison(frame, as_of, days)
        except StageError as exc:
            out["spend"] = {"skipped": f"no spend comparison: {exc}"}
        # kept for the report: the latest check
        folder = self.artifacts_dir / CLV_MODEL
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "validation.json").write_text(json.dumps(out, default=float), encoding="utf-8")
        return out

    def _spend_comparison(self, frame: pd.DataFrame, as_of: dt.date, days: int) -> dict[str, Any]:
        """Holdout spend of the same customers predicted two ways: the configured purchase
        model times Gamma-Gamma, and LightGBM regression on the feature set, trained one
        holdout length earlier (features then, spend in the period that followed) so
        that it never sees the holdout."""
        from lightgbm import LGBMRegressor

        cfg = self.config.clv
        unit = cfg.unit_days
        purchases = purchase_model(cfg.model).fit(frame.frequency, frame.recency, frame["T"])
        spend = GammaGamma().fit(frame.frequency, frame.monetary)
        btyd = purchases.conditional_expected_purchases(
            days / unit, frame.frequency, frame.recency, frame["T"]
        ) * spend.expected_spend(frame.frequency, frame.monetary)
        earlier = as_of - dt.timedelta(days=days)
        past = self.clv_summary(earlier, holdout_days=days)[["customer_id", "holdout_spend"]]
        # in customer order: LightGBM's row sampling depends on the order of the rows
        train = self.features_frame(earlier).merge(past, on="customer_id")
        train = train.sort_values("customer_id", ignore_index=True)
        test = self.features_frame(as_of).merge(frame[["customer_id"]], on="customer_id")
        test = frame[["customer_id", "holdout_spend"]].merge(test, on="customer_id")
        columns = [
            c
            for c in train.columns
            if c not in ("customer_id", "as_of", "holdout_spend")
            and pd.api.types.is_numeric_dtype(train[c])
            and c in test.columns
        ]
        model = LGBMRegressor(
            objective="tweedie",
            n_estimators=400,
            learning_rate=0.05,
            num_leaves=31,
            min_child_samples=50,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=0,
            n_jobs=2,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        ).fit(_numbers(train[columns]), train.holdout_spend.clip(lower=0).round(6))
        ml = pd.Series(model.predict(_numbers(test[columns])), index=test.customer_id)
        actual = frame.holdout_spend.to_numpy(float)

        def judged(guess: np.ndarray) -> dict[str, float]:
            order = np.argsort(-guess, kind="stable")
            top = order[: max(len(order) // 10, 1)]
            return {
                "predicted_total": float(guess.sum()),
                "mae": float(np.mean(np.abs(guess - actual))),
                "spearman": float(pd.Series(guess).corr(pd.Series(actual), method="spearman")),
                "top_decile_revenue_share": float(actual[top].sum() / actual.sum())
                if actual.sum()
                else float("nan"),
            }

        return {
            "customers": len(frame),
            "actual_total": float(actual.sum()),
            "btyd": {"model": f"{cfg.model} x gamma-gamma", **judged(btyd)},
            "lightgbm": {
                "model": f"LightGBM (tweedie) on {len(columns)} features, trained as of {earlier}",
                "training_customers": len(train),
                **judged(ml.reindex(frame.customer_id).fillna(0.0).to_numpy()),
            },
        }

    def clv_report(self) -> dict[str, Any] | None:
        """What the report shows: the latest CLV model, its last holdout check and the
        latest scores."""
        wh = self.warehouse
        if not wh.exists("models", "registry"):
            return None
        try:
            entry = registry.get(wh, CLV_MODEL)
        except StageError:
            return None
        path = self.artifacts_dir / CLV_MODEL / "validation.json"
        scores = None
        if wh.exists("scores", "clv"):
            # the latest scores, by whichever version made them
            t = wh.table("scores", "clv")
            latest = t.filter(t.as_of == t.as_of.max())
            scores = latest.filter(latest.model_version == latest.model_version.max()).execute()
        return {
            "entry": entry,
            "summary": registry.summary(self.artifacts_dir, entry),
            "validation": json.loads(path.read_text(encoding="utf-8")) if path.exists() else None,
            "scores": scores,
        }

    def score_clv(
        self,
        as_of: dt.date,
        *,
        horizon_days: int | None = None,
        discount: float | None = None,
        margin: float | None = None,
        version: int | None = None,
        projection: bool = False,
    ) -> dict[str, Any]:
        """``scores.clv``: every customer's P(alive), expected purchases and spend over the
        horizon and discounted CLV as of a date, by the latest (or given) CLV model;
        scoring a date again with the same version replaces its rows. A date after the
        data is refused unless ``projection``."""
        wh = self.warehouse
        last = check_as_of(wh, self.config, as_of, "score clv", projection=projection)
        if not wh.exists("models", "registry"):
            raise StageError("clv: no CLV model yet; run `custintel clv fit` first")
        entry = registry.get(wh, CLV_MODEL, version)
        fitted = registry.load(self.artifacts_dir, entry)
        cfg = self.config.clv
        horizon = cfg.horizon_days if horizon_days is None else horizon_days
        rate = cfg.discount if discount is None else discount
        share = cfg.margin if margin is None else margin
        frame, new = self._usable(self.clv_summary(as_of))
        events, _ = events_for(wh, self.config)
        excluded = set(opted_out(events, as_of).execute().customer_id)
        frame = frame[~frame.customer_id.isin(excluded)].reset_index(drop=True)
        out = lifetime_value(
            fitted["purchases"],
            fitted["spend"],
            frame,
            horizon_days=horizon,
            discount=rate,
            margin=share,
            unit_days=cfg.unit_days,
        )
        out.insert(1, "as_of", as_of)
        out["horizon_days"] = horizon
        out["model_version"] = entry.version
        wh.ensure_schema("scores")
        with wh.transaction():
            if wh.exists("scores", "clv"):
                wh.delete_where(
                    "scores", "clv", f"as_of = DATE '{as_of}' AND model_version = {entry.version}"
                )
            wh.put("scores", "clv", out, append=True)
        if last is not None:
            record_projection(wh, "scores.clv", as_of, last, new_run_id())
        top = out.clv.sort_values(ascending=False)
        decile = max(len(top) // 10, 1)
        return {
            "projection": last is not None,
            "version": entry.version,
            "as_of": as_of.isoformat(),
            "customers": len(out),
            "left_out_no_history": new,
            "opted_out": len(excluded),
            "horizon_days": horizon,
            "discount": rate,
            "margin": share,
            "total_clv": float(out.clv.sum()),
            "mean_clv": float(out.clv.mean()) if len(out) else None,
            "top_decile_share": float(top.head(decile).sum() / top.sum()) if top.sum() else None,
            "mean_p_alive": float(np.mean(out.p_alive)) if len(out) else None,
            "table": "scores.clv",
        }


def run_stage(project: Any, run_id: str, progress: StageProgress | None) -> StageResult:
    """The ``clv`` stage of ``custintel run``."""
    as_of = default_as_of(project.warehouse, project.config)
    try:
        fit = project.clv_fit(as_of)
    except StageError as exc:
        return StageResult("clv", "skipped", str(exc))
    parts = [
        f"clv v{fit['version']} {fit['model']} + Gamma-Gamma on {fit['customers']:,} "
        f"customers ({fit['repeat_buyers']:,} repeat buyers)"
    ]
    check = None
    try:
        # half a year's holdout inside the observed past (the LightGBM
        # alternative learns from the half year before)
        check = project.clv_validate(as_of - dt.timedelta(days=183), as_of - dt.timedelta(days=1))
        m = check["models"][fit["model"]]
        parts.append(
            f"holdout of the last half year: {m['predicted']:,.0f} predicted, "
            f"{m['actual']:,.0f} actual ({m['aggregate_error']:+.1%})"
        )
    except StageError as exc:
        parts.append(f"no holdout check: {exc}")
    sc = project.score_clv(as_of)
    parts.append(f"{sc['customers']:,} valued as of {sc['as_of']}, mean CLV {sc['mean_clv']:,.2f}")
    return StageResult("clv", "ok", "; ".join(parts), {"fit": fit, "validation": check})
