"""Uplift tasks of a project: learn who is persuadable from past randomized campaigns,
score the customers, and let a campaign leave the sleeping dogs alone.

Training rows are (campaign, customer) pairs of past campaigns with a control group and a
closed window: the customer's features as of the send date (nothing after it), whether
they were treated, the known probability of treatment (1 minus the designed holdout share:
the campaign's ``holdout``, ``measurement.control_shares``, else the campaign's own split,
which is the design a randomized assignment carried out), and the outcome in the window.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd

from custintel.clv.value import purchase_model
from custintel.core import registry
from custintel.core.errors import StageError
from custintel.core.lineage import now
from custintel.features.build import params_for, version_of
from custintel.measure.campaign import CONTROL, units
from custintel.measure.uplift import LEARNERS, NAMES, compare, fit
from custintel.pipeline.parts import ProjectParts
from custintel.segments.fit import data_hash

OUTCOMES = ("orders", "revenue", "converted")
BAG = 5
"""Fits averaged in the registered model (``measure.uplift.Fitted``)."""


def model_name(campaign: str) -> str:
    return f"uplift_{campaign}"


OUTLOOK = ("outlook_p_alive", "outlook_purchases")
"""Features from the purchase model fitted as of the date (BG/NBD by default): whether a
customer is still active and the purchases expected in the outcome window. A retention
offer can only change the behaviour of someone still there, so these two carry most of
what the effect depends on, and no tree learns them easily from raw recency and
frequency."""


class UpliftTasks(ProjectParts):
    """Uplift methods of :class:`~custintel.pipeline.project.Project`."""

    def uplift_features(self, as_of: dt.date) -> pd.DataFrame:
        """The features as of a date, with the purchase model's outlook fitted on the
        purchases before it (point in time: nothing after ``as_of``)."""
        feats = self.features_frame(as_of)
        try:
            summary = self.clv_summary(as_of)  # type: ignore[attr-defined]
            usable = summary[summary["T"] > 0]
            model = purchase_model(self.config.clv.model).fit(
                usable.frequency, usable.recency, usable["T"]
            )
        except (StageError, ValueError):  # too little history: the learners go without
            return feats.assign(**{c: np.nan for c in OUTLOOK})
        horizon = self.config.measurement.window_days / self.config.clv.unit_days
        args = (usable.frequency, usable.recency, usable["T"])
        outlook = pd.DataFrame(
            {
                "customer_id": usable.customer_id.to_numpy(),
                OUTLOOK[0]: model.probability_alive(*args),
                OUTLOOK[1]: model.conditional_expected_purchases(horizon, *args),
            }
        )
        return feats.merge(outlook, on="customer_id", how="left")

    def uplift_frame(
        self, campaigns: list[str] | None = None, outcome: str = "orders"
    ) -> tuple[pd.DataFrame, list[str]]:
        """The pooled training rows and the feature columns."""
        if outcome not in OUTCOMES:
            raise StageError(f"uplift: outcome must be one of {', '.join(OUTCOMES)}")
        mc = self.config.measurement
        history = self._contact_history()  # type: ignore[attr-defined]
        known = list(history.groupby("campaign_id").sent_at.min().sort_values().index)
        names = campaigns or known
        missing = sorted(set(names) - set(known))
        if missing:
            raise StageError(
                f"uplift: {', '.join(missing)} not in the contact history "
                f"(campaigns there: {', '.join(known) or 'none'})"
            )
        fs, _ = version_of(params_for(self.warehouse, self.config))
        parts = []
        for name in names:
            u = units(history[history.campaign_id == name])
            frame, _, horizon, _ = self._outcomes(  # type: ignore[attr-defined]
                u.frame, mc.window_days, mc.pre_days
            )
            n_c = int((frame.arm == CONTROL).sum())
            closes = frame.send_ts.max() + pd.Timedelta(days=mc.window_days)
            if n_c == 0 or horizon is None or pd.Timestamp(horizon) < closes:
                if campaigns:  # asked for by name: say why it cannot be used
                    why = "has no control group" if n_c == 0 else "has its window still open"
                    raise StageError(f"uplift: campaign {name} {why}")
                continue
            configured = self.config.campaigns.get(name)
            share = configured.holdout if configured else mc.control_shares.get(name)
            if share is None:
                share = n_c / len(frame)
            send = frame.send_ts.min().date()
            feats = self.uplift_features(send)
            names = [*fs.names(), *OUTLOOK]
            cols = [c for c in names if c in feats and pd.api.types.is_numeric_dtype(feats[c])]
            rows = frame[["customer_id", "arm", outcome]].merge(
                feats[["customer_id", *cols]], on="customer_id", how="inner"
            )
            parts.append(
                rows.assign(
                    campaign_id=name,
                    send_date=send,
                    treated=(rows.arm != CONTROL).to_numpy(),
                    p=1.0 - share,
                    y=rows[outcome].astype("float64"),
                )
            )
        if not parts:
            raise StageError(
                "uplift: no past campaign with a control group and a closed window to learn from"
            )
        data = pd.concat(parts, ignore_index=True)
        features = [c for c in [*fs.names(), *OUTLOOK] if c in data]
        return data, features

    def uplift_train(
        self,
        name: str,
        *,
        campaigns: list[str] | None = None,
        outcome: str = "orders",
        learners: tuple[str, ...] = LEARNERS,
        folds: int = 3,
        top: float = 0.3,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Compare the learners out of fold on past campaigns, refit the best on every row
        and register it as the model ``uplift_<name>``."""
        data, features = self.uplift_frame(campaigns, outcome)
        # Rounded far below any meaning: warehouse sums computed in parallel differ in the
        # last bits from run to run, and LightGBM's splits with them.
        x = data[features].to_numpy("float64").round(9)
        t = data.treated.to_numpy()
        y = data.y.to_numpy()
        p = data.p.to_numpy()
        response = _response_out_of_fold(x, t, y, folds, seed)
        c = compare(
            x, t, y, p, learners=learners, folds=folds, seed=seed, top=top, response=response
        )
        model = fit(x, t, y, p, c.chosen, seed=seed, features=features, bag=BAG)
        model.sleeping_below = c.sleeping_below
        used = sorted(data.campaign_id.unique())
        entry = registry.register(
            self.warehouse,
            self.artifacts_dir,
            name=model_name(name),
            kind="uplift",
            algorithm=f"{c.chosen}-learner+lightgbm",
            model=model,
            params={
                "learners": list(learners),
                "folds": folds,
                "top": top,
                "seed": seed,
                "outcome": outcome,
            },
            feature_set="customer",
            feature_set_version=version_of(params_for(self.warehouse, self.config))[1],
            snapshots=[str(d) for d in sorted(data.send_date.unique())],
            data_hash=data_hash(data, ["campaign_id", "customer_id", "treated", "y"]),
            metrics={
                r.learner: {"auuc": r.auuc, "policy_value_top": r.policy_value_top}
                for r in c.table.itertuples()
            },
            summary={"campaigns": used, "rows": len(data), "chosen": c.chosen},
        )
        self._write_uplift(name, entry.version, c, outcome, used, len(data))
        best = c.table.set_index("learner").loc[c.chosen]
        return {
            "name": model_name(name),
            "version": entry.version,
            "chosen": c.chosen,
            "chosen_name": NAMES[c.chosen],
            "outcome": outcome,
            "campaigns": used,
            "rows": len(data),
            "treated_share": float(t.mean()),
            "top": top,
            "learners": c.table.to_dict(orient="records"),
            "policy_value_top": float(best.policy_value_top),
            "policy_value_all": float(best.policy_value_all),
        }

    def _write_uplift(
        self, name: str, version: int, c: Any, outcome: str, used: list[str], rows: int
    ) -> None:
        wh = self.warehouse
        wh.ensure_schema("measure")
        stamp = {"model": model_name(name), "version": version}
        runs = pd.DataFrame(
            [
                {
                    **stamp,
                    "trained_at": now(),
                    "chosen": c.chosen,
                    "outcome": outcome,
                    "top": c.top,
                    "rows": rows,
                    "campaigns": json.dumps(used),
                }
            ]
        )
        tables = {
            "uplift_runs": runs,
            "uplift_learners": c.table.assign(**stamp),
            "uplift_qini": c.qini.assign(**stamp),
            "uplift_deciles": c.deciles.assign(**stamp),
        }
        with wh.transaction():
            for table, frame in tables.items():
                if wh.exists("measure", table):
                    wh.delete_where(
                        "measure",
                        table,
                        f"model = '{model_name(name)}' AND version = {int(version)}",
                    )
                wh.put("measure", table, frame, append=True)

    def uplift_score(self, name: str, as_of: dt.date, version: int | None = None) -> dict[str, Any]:
        """Every customer's predicted uplift as of a date into ``scores.uplift_<name>``
        (uplift, its decile with 1 the most persuadable, and ``sleeping_dog`` when it is
        below the threshold the out-of-fold deciles set: :func:`sleeping_threshold`)."""
        wh = self.warehouse
        entry = registry.get(wh, model_name(name), version=version)
        model = registry.load(self.artifacts_dir, entry)
        feats = (
            self.uplift_features(as_of)
            if set(OUTLOOK) & set(model.features)
            else self.features_frame(as_of)
        )
        for col in model.features:
            if col not in feats:
                feats[col] = np.nan
        uplift = model.predict(feats[model.features].astype("float64").round(9))
        rank = pd.Series(uplift).rank(ascending=False, method="first").to_numpy()
        decile = np.ceil(rank * 10 / max(len(rank), 1)).clip(1, 10).astype(int)
        out = pd.DataFrame(
            {
                "customer_id": feats.customer_id.to_numpy(),
                "as_of": as_of,
                "uplift": uplift,
                "decile": decile,
                "sleeping_dog": uplift < model.sleeping_below,
                "model_version": entry.version,
            }
        )
        table = model_name(name)
        wh.ensure_schema("scores")
        with wh.transaction():
            if wh.exists("scores", table):
                wh.delete_where("scores", table, f"as_of = DATE '{as_of}'")
            wh.put("scores", table, out, append=True)
        return {
            "name": table,
            "version": entry.version,
            "as_of": as_of.isoformat(),
            "customers": len(out),
            "sleeping_dogs": int(out.sleeping_dog.sum()),
            "mean_uplift": float(np.mean(uplift)),
        }


def _response_out_of_fold(
    x: np.ndarray, treated: np.ndarray, y: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """The usual targeting to compare with: each customer's outcome if treated, learned
    from the treated alone (a response propensity), out of fold."""
    from lightgbm import LGBMRegressor
    from sklearn.model_selection import StratifiedKFold

    from custintel.measure.uplift import DEFAULT_PARAMS

    out = np.empty(len(y))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in split.split(x, treated.astype(int)):
        keep = train[treated[train]]
        m = LGBMRegressor(**{**DEFAULT_PARAMS, "random_state": seed}).fit(x[keep], y[keep])
        out[test] = m.predict(x[test])
    return out
