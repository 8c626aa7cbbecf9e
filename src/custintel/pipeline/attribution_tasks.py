"""Attribution tasks of a project: channel credit over the web journeys in the warehouse.

Sessions come from ``clean.web_events`` (their ``utm_source`` / ``utm_medium``), a cookie
counted as its customer's when identity resolution stitched it (``identity.devices``).
Journeys are cut at purchases and aggregated to unique paths in the warehouse; every
method then works on those few thousand rows. Channel holdout experiments (a CSV named by
``measurement.attribution.experiments``) calibrate the credit to incrementality.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from custintel.core.errors import ConfigError, StageError
from custintel.core.lineage import new_run_id, now
from custintel.measure import attribution as attr
from custintel.measure.journeys import DEFAULT_CHANNELS, paths, reach, sessions
from custintel.pipeline.parts import ProjectParts

METHODS = (*attr.RULES, "markov", "shapley", "model", "calibrated")
EXPERIMENT_COLUMNS = ("channel", "treated", "treated_conversions", "control", "control_conversions")


def read_experiments(path: Path) -> pd.DataFrame:
    """A lift-study CSV, checked: each row a channel with whole non-negative counts and no
    more conversions than people. Errors name the file, row and column."""
    if not path.exists():
        raise ConfigError(f"{path}: channel experiments file not found")
    e = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in EXPERIMENT_COLUMNS if c not in e.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}")
    for col in EXPERIMENT_COLUMNS[1:]:
        v = pd.to_numeric(e[col], errors="coerce")
        bad = v.isna() | (v < 0) | (v != np.floor(v))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ConfigError(
                f"{path}: row {row + 2}, column {col}: {e[col].iloc[row]!r} is not a "
                "whole number of people or conversions"
            )
        e[col] = v.astype(np.int64)
    for n, c in (("treated", "treated_conversions"), ("control", "control_conversions")):
        bad = (e[c] > e[n]) | (e[n] == 0)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ConfigError(
                f"{path}: row {row + 2}, column {c}: {e[c].iloc[row]} conversions among "
                f"{e[n].iloc[row]} {n}"
            )
    dup = e.channel.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise ConfigError(f"{path}: row {row + 2}: channel {e.channel.iloc[row]!r} twice")
    e["channel"] = e.channel.astype(str)
    return e[list(EXPERIMENT_COLUMNS)]


class AttributionTasks(ProjectParts):
    """Attribution methods of :class:`~custintel.pipeline.project.Project`."""

    def attribution_ready(self) -> str | None:
        """Why attribution cannot run (None when it can)."""
        wh = self.warehouse
        if not wh.exists("clean", "web_events"):
            return "no web events ingested"
        web = wh.table("clean", "web_events")
        tags = [web[c].notnull() for c in ("utm_medium", "utm_source") if c in web.columns]
        if not tags or not bool(web.filter(ibis.or_(*tags)).limit(1).count().execute()):
            return "web events carry no utm_source / utm_medium"
        return None

    def attribution_paths(
        self, *, start: dt.date | None = None, end: dt.date | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Unique paths (``path``, ``conversions``, ``nulls``) of the journeys ending in
        ``[start, end)``, and the people each channel touched in them."""
        reason = self.attribution_ready()
        if reason:
            raise StageError(f"attribution: {reason}")
        cfg = self.config.measurement.attribution
        wh = self.warehouse
        web = wh.table("clean", "web_events")
        for col in ("utm_source", "utm_medium", "customer_ref", "session_id"):
            if col not in web.columns:
                web = web.mutate(**{col: ibis.null("string")})
        person = web.customer_ref.coalesce(web.anonymous_id)
        if wh.exists("identity", "devices"):
            dev = wh.table("identity", "devices").select("anonymous_id", owner="customer_id")
            web = web.left_join(dev, "anonymous_id")
            person = web.owner.coalesce(web.customer_ref).coalesce(web.anonymous_id)
        mapping = {**DEFAULT_CHANNELS, **{k.lower(): v for k, v in cfg.channels.items()}}
        s = sessions(web, person=person, mapping=mapping)

        def stamp(d: dt.date | None) -> dt.datetime | None:
            return None if d is None else dt.datetime.combine(d, dt.time())

        kw = {
            "start": stamp(start),
            "end": stamp(end),
            "lookback_days": cfg.lookback_days,
            "max_touches": cfg.max_touches,
        }
        return paths(s, **kw).execute(), reach(s, **kw).execute()

    def attribution_experiments(self) -> pd.DataFrame | None:
        """The configured channel experiments, checked (None when none are configured)."""
        name = self.config.measurement.attribution.experiments
        if not name:
            return None
        path = Path(name) if Path(name).is_absolute() else self.dir / name
        return read_experiments(path)

    def attribute(
        self,
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Every method's channel credit, written to ``measure.attribution`` (one row per
        method and channel), ``measure.attribution_calibration`` and the busiest paths to
        ``measure.attribution_paths``."""
        cfg = self.config.measurement.attribution
        start = start or cfg.from_date
        p, people = self.attribution_paths(start=start, end=end)
        if p.conversions.sum() <= 0:
            raise StageError("attribution: no journey ended in a purchase in the period")
        experiments = self.attribution_experiments()
        credit: dict[str, pd.Series] = {
            r: attr.rule_based(p, r, half_life=cfg.half_life) for r in attr.RULES
        }
        credit["markov"] = attr.markov(p)[0]
        credit["shapley"] = attr.shapley(p)
        cal = attr.calibrated(
            p,
            experiments,
            base=tuple(cfg.base_channels),
            reach=people.set_index("channel").people.astype(float),
        )
        credit["model"] = cal.model_credit.clip(lower=0.0)
        credit["calibrated"] = cal.credit
        run_id = run_id or new_run_id()
        stamp = {"run_id": run_id, "computed_at": now(), "from_date": start, "to_date": end}
        rows = [
            pd.DataFrame(
                {
                    "method": m,
                    "channel": c.index.astype(str),
                    "credit": c.to_numpy(float),
                    "share": attr.shares(c).to_numpy(float),
                }
            )
            for m, c in credit.items()
        ]

        def stamped(f: pd.DataFrame) -> pd.DataFrame:
            f = f.assign(**stamp)
            dates = ["from_date", "to_date"]
            f[dates] = f[dates].apply(pd.to_datetime).astype("datetime64[us]")
            return f

        table = stamped(pd.concat(rows, ignore_index=True))
        calibration = stamped(cal.reset_index())
        journeys = p.conversions + p.nulls
        busiest = stamped(p.assign(journeys=journeys).nlargest(200, "journeys"))
        wh = self.warehouse
        wh.ensure_schema("measure")
        with wh.transaction():
            wh.put("measure", "attribution", table)
            wh.put("measure", "attribution_calibration", calibration)
            wh.put("measure", "attribution_paths", busiest)
        unknown = (
            sorted(set(experiments.channel) - set(cal.index)) if experiments is not None else []
        )
        return {
            "run_id": run_id,
            "paths": len(p),
            "journeys": int(journeys.sum()),
            "conversions": int(p.conversions.sum()),
            "incremental": float(cal.credit.sum()),
            "calibrated": sorted(cal.index[cal.calibrated]),
            "experiments_unmatched": unknown,
            "credit": table,
            "calibration": cal,
        }
