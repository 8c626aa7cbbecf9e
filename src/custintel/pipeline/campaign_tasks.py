"""Campaign tasks of a project: plan (what-if), run (decide, log, record contacts), why,
and the next-best action across every offer."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from custintel.campaigns import delivery, rules
from custintel.campaigns.decide import Outcome, Plan, decide
from custintel.core.config import CampaignConfig, ProjectConfig
from custintel.core.errors import ConfigError, StageError
from custintel.core.lineage import new_run_id, now
from custintel.features.build import default_as_of
from custintel.pipeline.campaign_context import customer_context, versions_json
from custintel.pipeline.parts import Progress as StageProgress
from custintel.pipeline.parts import ProjectParts, StageResult

NBA = "nba"


def plan_for(cfg: ProjectConfig, name: str) -> Plan:
    """A campaign's plan from the config; ``nba`` (unless declared) is every offer with
    no holdout: the next-best action, batch or real-time."""
    if name == NBA and NBA not in cfg.campaigns:
        if not cfg.offers:
            raise ConfigError("nba: no offers declared (custintel.yaml: offers)")
        campaign = CampaignConfig(offers=list(cfg.offers), holdout=0.0)
    else:
        if name not in cfg.campaigns:
            known = ", ".join(cfg.campaigns) or "none declared"
            raise ConfigError(f"no campaign {name!r} in custintel.yaml (campaigns: {known})")
        campaign = cfg.campaigns[name]
    return Plan(name, campaign, dict(cfg.offers), dict(cfg.channels), cfg.contact_policy)


class CampaignTasks(ProjectParts):
    """Campaign methods of :class:`~custintel.pipeline.project.Project`."""

    def _plan(self, name: str) -> Plan:
        return plan_for(self.config, name)

    def _features_or_none(self, as_of: dt.date) -> Any:
        try:
            return self.features_table(as_of)
        except Exception:
            return None

    def _frozen(self, plan: Plan) -> dict[str, float] | None:
        wh = self.warehouse
        if not plan.campaign.stratify or not wh.exists("campaign", "holdouts"):
            return None
        t = wh.table("campaign", "holdouts")
        rows = t.filter(t.control_group == plan.control_group).execute()
        return dict(zip(rows.stratum, rows.threshold, strict=True)) if len(rows) else None

    def _decide(self, name: str, as_of: dt.date, allocation: str | None = None):  # type: ignore[no-untyped-def]
        plan = self._plan(name)
        ctx, versions = customer_context(
            self.warehouse, self.config, self.dir, plan, as_of, self._features_or_none(as_of)
        )
        if ctx.empty:
            raise StageError(f"campaign {name}: no customers existed before {as_of}")
        missing = [k for k in plan.labels() if versions.get(k) is None]
        if missing:
            raise StageError(
                f"campaign {name}: no scores for {', '.join(missing)} on or before {as_of}; "
                f"run `custintel score {missing[0]} --as-of {as_of}` first"
            )
        outcome = decide(ctx, plan, as_of, frozen=self._frozen(plan), allocation=allocation)
        return plan, outcome, versions

    def campaign_plan(
        self, name: str, as_of: dt.date, *, allocation: str | None = None
    ) -> dict[str, Any]:
        """What a run would decide, writing nothing."""
        _, outcome, versions = self._decide(name, as_of, allocation)
        return {
            "campaign": name,
            "as_of": as_of.isoformat(),
            **outcome.summary,
            "model_versions": versions,
        }

    def campaign_run(self, name: str, as_of: dt.date, *, deliver: bool = True) -> dict[str, Any]:
        """Decide and record: ``campaign.decisions`` (every customer, with reasons),
        ``campaign.candidates`` (every audience member's actions and the rules each
        failed), ``campaign.contacts`` (treated and control, with their send time) and
        ``campaign.runs``; then deliver the treated contacts (files and webhooks, see
        :meth:`campaign_deliver`). Running a campaign again on the same date replaces its
        decisions; what was already delivered is not sent again."""
        self.events_flush()  # type: ignore[attr-defined]  # opt-outs sent to the service count
        plan, outcome, versions = self._decide(name, as_of)
        run_id = new_run_id()
        self._write(plan, outcome, versions, as_of, run_id)
        result = {
            "campaign": name,
            "as_of": as_of.isoformat(),
            "run_id": run_id,
            **outcome.summary,
            "model_versions": versions,
        }
        if deliver:
            result["delivery"] = self.campaign_deliver(name, as_of)  # type: ignore[attr-defined]
        return result

    def _write(
        self, plan: Plan, outcome: Outcome, versions: dict[str, Any], as_of: dt.date, run_id: str
    ) -> None:
        wh = self.warehouse
        wh.ensure_schema("campaign")
        stamp = {"campaign_id": plan.name, "as_of": as_of, "run_id": run_id}
        d = outcome.decisions.assign(
            **stamp, model_versions=versions_json(versions), config_hash=self.config.config_hash()
        )
        contacts = delivery.contact_rows(d, plan.name, plan.control_group, as_of, run_id)
        c = outcome.candidates.to_arrow()
        for k, v in stamp.items():
            c = c.append_column(k, pa.array([v] * c.num_rows))
        actions = pd.DataFrame(
            {
                **stamp,
                "position": np.arange(1, len(outcome.candidates.actions) + 1),
                "offer": [o for o, _ in outcome.candidates.actions],
                "channel": [ch for _, ch in outcome.candidates.actions],
            }
        )
        summary = pd.DataFrame(
            [
                {
                    **stamp,
                    "created_at": now(),
                    "summary": json.dumps(outcome.summary, default=str),
                    "config_hash": self.config.config_hash(),
                }
            ]
        )
        where = f"campaign_id = '{plan.name}' AND as_of = DATE '{as_of}'"
        tables = (("decisions", d), ("candidates", c), ("actions", actions),
                  ("contacts", contacts), ("runs", summary))  # fmt: skip
        _keep_long_candidates(wh)
        for table, frame in tables:  # columns a newer version added, before the transaction
            wh.add_columns("campaign", table, frame)
        with wh.transaction():
            for table, frame in tables:
                wh.delete_where("campaign", table, where)
                wh.put("campaign", table, frame, append=True)
            if outcome.thresholds and self._frozen(plan) is None:
                wh.put(
                    "campaign",
                    "holdouts",
                    pd.DataFrame(
                        {
                            "control_group": plan.control_group,
                            "stratum": list(outcome.thresholds),
                            "threshold": list(outcome.thresholds.values()),
                            "frozen_at": as_of,
                        }
                    ),
                    append=True,
                )

    def campaign_why(
        self, name: str, customer_id: str, as_of: dt.date | None = None
    ) -> dict[str, Any]:
        """Every rule a customer met in a campaign's run (the latest, or on ``as_of``)."""
        wh = self.warehouse
        if not wh.exists("campaign", "decisions"):
            raise StageError(f"campaign {name} has not run; `custintel campaign run {name}` first")
        d = wh.table("campaign", "decisions")
        d = d.filter(d.campaign_id == name)
        if as_of is None:
            as_of = d.aggregate(x=d.as_of.max()).execute().x.iloc[0]
            if as_of is None or pd.isna(as_of):
                raise StageError(f"campaign {name} has not run")
            as_of = pd.Timestamp(as_of).date()
        rows = d.filter((d.as_of == as_of) & (d.customer_id == customer_id)).execute()
        if rows.empty:
            raise StageError(f"campaign {name} on {as_of}: no customer {customer_id!r}")
        c = wh.table("campaign", "candidates")
        row = c.filter(
            (c.campaign_id == name) & (c.as_of == as_of) & (c.customer_id == customer_id)
        ).execute()
        a = wh.table("campaign", "actions")
        acts = a.filter((a.campaign_id == name) & (a.as_of == as_of)).order_by("position")
        acts = acts.execute()
        cands = (
            pd.DataFrame(
                {
                    "offer": acts.offer,
                    "channel": acts.channel,
                    "failed": list(row.failed.iloc[0]) if len(row) else 0,
                    "priority": list(row.priority.iloc[0]) if len(row) else np.nan,
                    "cost": list(row.cost.iloc[0]) if len(row) else np.nan,
                }
            )
            if len(row)
            else pd.DataFrame(columns=["offer", "channel", "failed", "priority", "cost"])
        )
        first = rows.iloc[0]
        return {
            "campaign": name,
            "as_of": str(as_of),
            "customer_id": customer_id,
            "outcome": [
                {k: _plain(r[k]) for k in ("outcome", "offer", "channel", "rule", "priority")}
                for _, r in rows.iterrows()
            ],
            "rules_met": first["rules"].split(",") if first["rules"] else [],
            "candidates": [
                {
                    "offer": r.offer,
                    "channel": r.channel,
                    "failed": rules.names(int(r.failed)),
                    "priority": float(r.priority),
                    "cost": float(r.cost),
                }
                for r in cands.itertuples()
            ],
            "factors": {
                k: _plain(first[k])
                for k in ("propensity", "value", "context_weight", "lever", "priority", "cost")
            },
            "model_versions": json.loads(first["model_versions"]),
            "config_hash": first["config_hash"],
            "run_id": first["run_id"],
        }

    def campaign_play_out(self, name: str, as_of: dt.date | None = None) -> dict[str, Any]:
        """Play a recorded run out in the project's simulation and judge its targeting
        against the truth (simulated projects only; see docs/campaigns.md)."""
        from custintel.pipeline.simulation import play_out_campaign

        if as_of is None:
            as_of = self._last_run(name)
        return play_out_campaign(self.dir, self.config, self.warehouse, name, as_of)

    def _last_run(self, name: str) -> dt.date:
        wh = self.warehouse
        if not wh.exists("campaign", "runs"):
            raise StageError(f"campaign {name} has not run; `custintel campaign run {name}` first")
        r = wh.table("campaign", "runs")
        last = r.filter(r.campaign_id == name).aggregate(x=r.as_of.max()).execute().x.iloc[0]
        if last is None or pd.isna(last):
            raise StageError(f"campaign {name} has not run; `custintel campaign run {name}` first")
        return pd.Timestamp(last).date()

    def nba(self, as_of: dt.date) -> dict[str, Any]:
        """Every customer's next-best action across all offers (no holdout): written to
        ``campaign.nba`` for that date."""
        self.events_flush()  # type: ignore[attr-defined]
        _plan, outcome, versions = self._decide(NBA, as_of)
        wh = self.warehouse
        wh.ensure_schema("campaign")
        d = outcome.decisions.assign(as_of=as_of, model_versions=versions_json(versions))
        wh.add_columns("campaign", "nba", d)
        with wh.transaction():
            wh.delete_where("campaign", "nba", f"as_of = DATE '{as_of}'")
            wh.put("campaign", "nba", d, append=True)
        return {"as_of": as_of.isoformat(), **outcome.summary, "table": "campaign.nba"}


def _keep_long_candidates(wh: Any) -> None:
    """Candidates were once one row per action; such a table is kept, renamed
    ``candidates_long``, and the wide table starts afresh."""
    old = wh.exists("campaign", "candidates") and not wh.exists("campaign", "actions")
    if old and wh.table("campaign", "candidates").schema()["failed"].is_integer():
        wh.sql("ALTER TABLE campaign.candidates RENAME TO candidates_long")


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_stage(project: Any, run_id: str, progress: StageProgress | None) -> StageResult:
    """The ``campaigns`` stage of ``custintel run``: every configured campaign, decided and
    recorded as of the run's date."""
    names = list(project.config.campaigns)
    if not names:
        return StageResult("campaigns", "skipped", "no campaigns in custintel.yaml")
    as_of = default_as_of(project.warehouse, project.config)
    parts, detail = [], {}
    for name in names:
        try:
            out = project.campaign_run(name, as_of)
        except StageError as exc:
            return StageResult("campaigns", "skipped", str(exc))
        detail[name] = out
        parts.append(
            f"{name}: {out['treatment']:,} treated, {out['control']:,} held out, "
            f"{out['excluded']:,} excluded; expected value {out['expected_value']:,.0f} "
            f"for {out['spend']:,.0f} spent"
        )
    return StageResult("campaigns", "ok", "; ".join(parts), detail)
