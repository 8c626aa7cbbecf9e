"""A campaign's decisions for every customer: eligibility, reachability, contact policy,
holdout, arbitration and allocation, with the rules each candidate met.

The input is one row per customer as of the decision date (``customers``, built by the
pipeline from the warehouse), with these columns; the ones an offer or channel does not
use may be absent:

- ``customer_id``; ``segment``; ``clv`` and ``clv_decile``;
- ``score__<label>``, ``decile__<label>``, ``tier__<label>`` for each label used;
- ``has_email`` (valid and not bounced), ``has_phone``, ``has_postal``;
- ``consent__<channel>`` (marketing allowed on it now), ``dnc__<channel>`` (on an
  unexpired do-not-contact list for that channel or all);
- ``sent__<channel>__<day|week|month>`` and ``sent__all__<...>``: contacts in the contact
  history in the cap's window; ``days_since_contact`` (NaN: never);
- ``days_since_purchase`` and ``days_since_purchase__<category>`` (NaN: never);
- ``open_ticket``, ``running_control``, ``fatigue`` (booleans); ``sleeping_dog`` (negative
  predicted uplift) when the campaign excludes them;
- ``send_hour``, ``send_weekday`` (e-mail send time) and any feature a condition names.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from custintel.campaigns import allocate, conditions, holdout, rules
from custintel.core.config import (
    CampaignConfig,
    ChannelConfig,
    ContactPolicyConfig,
    OfferConfig,
)
from custintel.core.errors import ConfigError

WINDOWS = ("day", "week", "month")
BIG = 10**9


@dataclass(frozen=True)
class Plan:
    """What one campaign run needs from the config."""

    name: str
    campaign: CampaignConfig
    offers: dict[str, OfferConfig]
    channels: dict[str, ChannelConfig]
    policy: ContactPolicyConfig

    @property
    def offer_names(self) -> list[str]:
        return list(self.campaign.offers)

    @property
    def channel_names(self) -> list[str]:
        if self.campaign.channels:
            return list(self.campaign.channels)
        out: list[str] = []
        for o in self.campaign.offers:
            out += [c for c in self.offers[o].channels if c not in out]
        return out

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The (offer, channel) actions the campaign may take."""
        chans = self.channel_names
        return [(o, c) for o in self.offer_names for c in self.offers[o].channels if c in chans]

    @property
    def control_group(self) -> str:
        return self.campaign.control_group or self.name

    def labels(self) -> list[str]:
        out = [self.offers[o].score for o in self.offer_names]
        if self.campaign.audience.score:
            out.append(self.campaign.audience.score)
        return list(dict.fromkeys(out))

    def conditions(self) -> dict[str, str]:
        """Config path -> SQL condition, for every condition the campaign uses."""
        out = {}
        if self.campaign.audience.where:
            out[f"campaigns.{self.name}.audience.where"] = self.campaign.audience.where
        for o in self.offer_names:
            if self.offers[o].eligible:
                out[f"offers.{o}.eligible"] = self.offers[o].eligible
        return out


@dataclass
class Candidates:
    """Every audience member's candidates: one row per member, one column per action
    (offer, channel) in ``actions`` order, with the rules failed as a bit mask.

    Kept wide because a million customers with thirty actions are thirty million long
    rows, which take a warehouse several times longer to write than a million rows of
    arrays; :meth:`long` gives the long form."""

    customer_id: np.ndarray
    actions: list[tuple[str, str]]
    failed: np.ndarray  # int64 [members, actions]
    priority: np.ndarray  # float64 [members, actions]
    cost: np.ndarray  # float64 [members, actions]

    def __len__(self) -> int:
        return len(self.customer_id)

    def to_arrow(self) -> pa.Table:
        """customer_id and list columns ``failed``, ``priority`` and ``cost``."""
        k = len(self.actions)
        offsets = pa.array(np.arange(len(self) + 1, dtype=np.int32) * k)

        def lists(a: np.ndarray) -> pa.ListArray:
            return pa.ListArray.from_arrays(offsets, pa.array(a.reshape(-1)))

        return pa.table(
            {
                "customer_id": pa.array(self.customer_id.astype(str), pa.string()),
                "failed": lists(self.failed),
                "priority": lists(self.priority),
                "cost": lists(self.cost),
            }
        )

    def long(self) -> pd.DataFrame:
        k = len(self.actions)
        return pd.DataFrame(
            {
                "customer_id": np.repeat(self.customer_id, k),
                "offer": np.tile([o for o, _ in self.actions], len(self)),
                "channel": np.tile([c for _, c in self.actions], len(self)),
                "failed": self.failed.reshape(-1),
                "priority": self.priority.reshape(-1),
                "cost": self.cost.reshape(-1),
            }
        )


@dataclass
class Outcome:
    """Decisions of one run: one row per customer and action (or per excluded customer)
    and every audience member's candidates, with the rules each failed as a bit mask."""

    decisions: pd.DataFrame
    candidates: Candidates
    thresholds: dict[str, float] | None
    summary: dict[str, Any] = field(default_factory=dict)


def audience(customers: pd.DataFrame, plan: Plan) -> np.ndarray:
    """Who the campaign considers: every condition of its audience holds."""
    a = plan.campaign.audience
    keep = np.ones(len(customers), dtype=bool)
    if a.segments:
        keep &= customers["segment"].isin(a.segments).to_numpy()
    if a.score:
        if a.deciles:
            keep &= customers[f"decile__{a.score}"].isin(a.deciles).to_numpy()
        if a.tiers:
            keep &= customers[f"tier__{a.score}"].isin(a.tiers).to_numpy()
    if a.clv_deciles:
        keep &= customers["clv_decile"].isin(a.clv_deciles).to_numpy()
    if a.where:
        keep &= conditions.evaluate(customers, a.where, f"campaigns.{plan.name}.audience.where")
    ids = customers["customer_id"]
    if a.include:
        keep |= ids.isin(a.include).to_numpy()
    if a.exclude:
        keep &= ~ids.isin(a.exclude).to_numpy()
    return keep


def _numpy_backed(customers: pd.DataFrame) -> pd.DataFrame:
    """Numeric and boolean columns held by numpy, converted once: every rule and factor
    reads them again for each of a campaign's actions."""
    out = {}
    for name, col in customers.items():
        if pd.api.types.is_bool_dtype(col.dtype) and not col.hasnans:
            out[name] = col.to_numpy(dtype=bool)
        elif pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            out[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[name] = col
    return pd.DataFrame(out, index=customers.index, copy=False)


def _flag(customers: pd.DataFrame, column: str, default: bool = False) -> np.ndarray:
    if column not in customers:
        return np.full(len(customers), default)
    return customers[column].fillna(default).to_numpy(dtype=bool)


def _number(customers: pd.DataFrame, column: str) -> np.ndarray:
    if column not in customers:
        return np.full(len(customers), np.nan)
    return customers[column].to_numpy(dtype=np.float64, na_value=np.nan)


def _reachable(customers: pd.DataFrame, need: str) -> np.ndarray:
    if need == "email_or_phone":
        return _flag(customers, "has_email") | _flag(customers, "has_phone")
    return _flag(customers, f"has_{need}")


def caps_left(customers: pd.DataFrame, plan: Plan, fatigued: np.ndarray) -> dict[str, tuple]:
    """Per channel and ``all``: (contacts the caps still allow, the same without the
    fatigue cut), after the contact history."""
    out = {}
    factor = plan.policy.fatigue.cap_factor if plan.policy.fatigue.enabled else 1.0
    for ch in [*plan.channel_names, "all"]:
        cap = plan.policy.caps.get(ch)
        left = np.full(len(customers), BIG, dtype=np.int64)
        left_tired = left.copy()
        if cap is not None:
            for window, limit in cap.limits().items():
                sent = np.nan_to_num(_number(customers, f"sent__{ch}__{window}")).astype(np.int64)
                left = np.minimum(left, limit - sent)
                # a day's cap is left alone: lowering a cap of 1 would mean never
                tired = (
                    limit
                    if window == "day"
                    else np.where(fatigued, math.floor(limit * factor), limit)
                )
                left_tired = np.minimum(left_tired, tired - sent)
        out[ch] = (np.maximum(left_tired, 0), np.maximum(left, 0))
    return out


def _overridden(customers: pd.DataFrame, plan: Plan, rule: str, channel: str, as_of: dt.date):
    ids = [
        o.customer_id
        for o in plan.policy.overrides
        if o.rule == rule
        and (o.channel is None or o.channel == channel)
        and (o.until is None or o.until >= as_of)
    ]
    return customers["customer_id"].isin(ids).to_numpy() if ids else None


def _set(mask: np.ndarray, rule: str, where: np.ndarray) -> None:
    mask[where] |= rules.BIT[rule]


def candidate_masks(
    customers: pd.DataFrame, plan: Plan, as_of: dt.date, in_audience: np.ndarray
) -> tuple[np.ndarray, dict[str, tuple]]:
    """The rules each (customer, offer, channel) fails before selection: a bit mask per
    customer (rows) and action of ``plan.pairs`` (columns)."""
    policy = plan.policy
    n = len(customers)
    fatigued = _flag(customers, "fatigue") & policy.fatigue.enabled
    caps = caps_left(customers, plan, fatigued)
    gc = policy.global_control
    in_global = (
        holdout.units(gc.name, customers["customer_id"].to_numpy()) < gc.share
        if gc.share > 0
        else np.zeros(n, dtype=bool)
    )
    since_contact = _number(customers, "days_since_contact")
    common = np.zeros(n, dtype=np.int64)
    _set(common, "audience", ~in_audience)
    if plan.campaign.sleeping_dogs == "exclude":
        _set(common, "sleeping_dog", _flag(customers, "sleeping_dog"))
    _set(common, "global_control", in_global)
    if policy.running_controls:
        _set(common, "running_control", _flag(customers, "running_control"))
    out = np.empty((n, len(plan.pairs)), dtype=np.int64)
    for j, (offer_name, ch) in enumerate(plan.pairs):
        offer = plan.offers[offer_name]
        mask = common.copy()
        if offer.eligible:
            ok = conditions.evaluate(customers, offer.eligible, f"offers.{offer_name}.eligible")
            _set(mask, "offer_rules", ~ok)
        _set(mask, "no_score", np.isnan(_number(customers, f"score__{offer.score}")))
        _set(mask, "no_address", ~_reachable(customers, plan.channels[ch].needs(ch)))
        _set(mask, "consent", ~_flag(customers, f"consent__{ch}", default=True))
        suppressed = {
            "do_not_contact": _flag(customers, f"dnc__{ch}"),
            "recent_purchase": _number(
                customers,
                f"days_since_purchase__{offer.category}"
                if offer.category
                else "days_since_purchase",
            )
            < policy.recent_purchase_days,
            "open_ticket": _flag(customers, "open_ticket") & policy.open_tickets,
            "cooling_off": since_contact < policy.cooling_off_days,
        }
        for rule, hit in suppressed.items():
            spared = _overridden(customers, plan, rule, ch, as_of)
            _set(mask, rule, hit if spared is None else hit & ~spared)
        for key in (ch, "all"):
            left, left_rested = caps[key]
            _set(mask, "frequency_cap", left_rested <= 0)
            _set(mask, "fatigue", (left <= 0) & (left_rested > 0))
        out[:, j] = mask
    return out, caps


def factors(customers: pd.DataFrame, plan: Plan, offer_name: str, ch: str) -> dict[str, np.ndarray]:
    """Priority = propensity x value x uplift x context weight x lever, and the cost."""
    offer = plan.offers[offer_name]
    p = np.nan_to_num(_number(customers, f"score__{offer.score}"))
    if offer.value == "clv":
        value = np.nan_to_num(_number(customers, "clv"))
    else:
        value = np.full(len(customers), float(offer.value))
    weight = np.full(len(customers), offer.context.get(ch, 1.0))
    if "segment" in customers and offer.context:
        weight = weight * customers["segment"].map(offer.context).fillna(1.0).to_numpy(float)
    priority = p * value * offer.uplift * weight * offer.lever
    cost = plan.channels[ch].cost + offer.cost + offer.cost_per_response * p
    return {
        "propensity": p,
        "value": value,
        "context_weight": weight,
        "lever": np.full(len(customers), offer.lever),
        "priority": priority,
        "cost": cost,
    }


def decide(
    customers: pd.DataFrame,
    plan: Plan,
    as_of: dt.date,
    *,
    frozen: dict[str, float] | None = None,
    allocation: str | None = None,
    summarize: bool = True,
) -> Outcome:
    """Every customer's decision in one campaign run (customers sorted by id first, so
    nothing depends on the order rows arrived in). ``summarize=False`` leaves out the
    run's summary and the allocation's comparison with its bound: the same decisions,
    for one customer at a time (the real-time next-best action), where they are
    meaningless and cost most of the time."""
    for where, condition in plan.conditions().items():
        conditions.check(condition, where, list(customers.columns))
    customers = _numpy_backed(customers.sort_values("customer_id", ignore_index=True))
    n = len(customers)
    ids = customers["customer_id"].to_numpy()
    in_audience = audience(customers, plan)
    masks, caps = candidate_masks(customers, plan, as_of, in_audience)
    pairs = plan.pairs
    chans = plan.channel_names
    offers = plan.offer_names

    # holdout: a stable hash of control group and customer
    u = holdout.units(plan.control_group, ids)
    strata = None
    if plan.campaign.stratify:
        column = "segment" if plan.campaign.stratify == "segment" else None
        if column is None:
            label = plan.campaign.audience.score or plan.offers[offers[0]].score
            column = f"tier__{label}"
        strata = (
            customers[column].astype(str).fillna("(none)").to_numpy()
            if column in customers
            else np.full(n, "(none)")
        )
    all_masks = masks
    alive = all_masks == 0
    anyone = alive.any(axis=1)
    if strata is not None and frozen is None:
        frozen = holdout.thresholds(u[anyone], strata[anyone], plan.campaign.holdout)
    control = holdout.held_out(u, plan.campaign.holdout, strata, frozen)

    # allocation over the surviving candidates
    cust_idx, pair_idx = np.nonzero(alive)
    priority = np.zeros((n, len(pairs)))
    cost = np.zeros((n, len(pairs)))
    for j, pair in enumerate(pairs):
        f = factors(customers, plan, *pair)
        priority[:, j], cost[:, j] = f["priority"], f["cost"]
    pair_offer = np.array([offers.index(o) for o, _ in pairs], dtype=np.int32)
    pair_channel = np.array([chans.index(c) for _, c in pairs], dtype=np.int32)
    problem = allocate.Problem(
        customer=cust_idx.astype(np.int64),
        offer=pair_offer[pair_idx],
        channel=pair_channel[pair_idx],
        value=priority[cust_idx, pair_idx],
        cost=cost[cust_idx, pair_idx],
        control=control,
        channel_caps=np.stack([caps[c][0] for c in chans], axis=1) if chans else np.zeros((n, 0), np.int64),
        total_caps=caps["all"][0],
        offer_budget=np.array([plan.offers[o].budget if plan.offers[o].budget is not None else np.inf for o in offers]),
        offer_inventory=np.array([plan.offers[o].inventory if plan.offers[o].inventory is not None else 10**18 for o in offers], dtype=np.int64),
        channel_budget=np.array([plan.channels[c].budget if plan.channels[c].budget is not None else np.inf for c in chans]),
        budget=plan.campaign.budget if plan.campaign.budget is not None else np.inf,
        per_channel=plan.campaign.actions_per_channel,
        per_customer=plan.campaign.actions_per_customer,
    )  # fmt: skip
    method = allocation or plan.campaign.allocation
    if method == "exact":
        chosen = allocate.exact(problem)
        if chosen is None:
            raise ConfigError(
                f"campaigns.{plan.name}.allocation: the exact solver found no solution in time; use greedy"
            )
        status = np.where(chosen, allocate.ACCEPTED, allocate.BUDGET).astype(np.int8)
        run = allocate.Allocation(status, [], None)
    else:
        run = allocate.allocate(problem)
        status = run.status
    comparison = allocate.compare(problem, run) if summarize else {}
    bits = np.zeros(max(allocate.STATUS_RULE) + 1, dtype=np.int64)
    for code, rule in allocate.STATUS_RULE.items():
        bits[code] = rules.BIT[rule]
    flat = cust_idx * len(pairs) + pair_idx
    all_masks.reshape(-1)[flat] |= bits[status]
    accepted = np.zeros_like(alive)
    accepted.reshape(-1)[flat[status == allocate.ACCEPTED]] = True

    del problem, cust_idx, pair_idx, alive
    decisions = _decisions(customers, plan, pairs, all_masks, accepted, control, priority)
    if in_audience.all():  # views, not copies, of a million rows by thirty actions
        candidates = Candidates(ids, list(pairs), all_masks, priority, cost)
    else:
        member = np.flatnonzero(in_audience)
        candidates = Candidates(
            ids[member], list(pairs), all_masks[member], priority[member], cost[member]
        )
    summary: dict[str, Any] = {}
    if summarize:
        summary = _summary(decisions, status, in_audience, control, method)
        summary["allocation"] = {"method": method, **comparison}
    return Outcome(decisions, candidates, frozen, summary)


def _decisions(customers, plan, pairs, masks, accepted, control, priority) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """One row per action taken (treatment or control) and one per customer with none."""
    ids = customers["customer_id"].to_numpy()
    n = len(ids)
    any_mask = np.bitwise_or.reduce(masks, axis=1) if masks.shape[1] else np.zeros(n, np.int64)
    firsts = (
        np.stack([rules.first(masks[:, j]) for j in range(masks.shape[1])], axis=1)
        if masks.shape[1]
        else np.full((n, 1), 0)
    )
    furthest = firsts.max(axis=1)
    c_idx, p_idx = np.nonzero(accepted)
    taken = pd.DataFrame({"_c": c_idx, "_p": p_idx})
    none = np.flatnonzero(~accepted.any(axis=1))
    best = priority.argmax(axis=1) if masks.shape[1] else np.zeros(n, np.int64)
    left = pd.DataFrame({"_c": none, "_p": best[none]})
    rows = pd.concat([taken, left], ignore_index=True)
    c, p = rows["_c"].to_numpy(), rows["_p"].to_numpy()
    is_taken = np.arange(len(rows)) < len(taken)
    out = pd.DataFrame(
        {
            "customer_id": ids[c],
            "outcome": np.where(is_taken, np.where(control[c], "control", "treatment"), "excluded"),
            "offer": np.where(is_taken, np.array([o for o, _ in pairs] or [""], dtype=object)[p], None),
            "channel": np.where(is_taken, np.array([ch for _, ch in pairs] or [""], dtype=object)[p], None),
            "rule": np.where(is_taken, None, np.array(rules.NAMES, dtype=object)[np.maximum(furthest[c], 0)]),
            "rules": _rule_lists(any_mask[c]),
        }
    )  # fmt: skip
    names = ("propensity", "value", "context_weight", "lever", "priority", "cost")
    cols = {k: np.full(len(c), np.nan) for k in names}
    for j, pair in enumerate(pairs):  # each action's factors, for the rows that show it
        rows = p == j
        if rows.any():
            f = factors(customers, plan, *pair)
            for k in names:
                cols[k][rows] = f[k][c[rows]]
    for k in names:
        out[k] = cols[k]
    out["send_hour"] = customers["send_hour"].to_numpy()[c] if "send_hour" in customers else None
    out["send_weekday"] = (
        customers["send_weekday"].to_numpy()[c] if "send_weekday" in customers else None
    )
    return out.sort_values(
        ["customer_id", "offer", "channel"], ignore_index=True, na_position="first"
    )


def _rule_lists(masks: np.ndarray) -> np.ndarray:
    """Comma-separated rule names per mask, each distinct mask spelt once."""
    distinct, which = np.unique(masks, return_inverse=True)
    names = np.array([",".join(rules.names(int(m))) for m in distinct] or [""], dtype=object)
    return names[which] if len(masks) else np.array([], dtype=object)


def _summary(decisions, status, in_audience, control, method) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    d = decisions
    treated = d[d.outcome == "treatment"]
    ctl = d[d.outcome == "control"]
    excluded = d[d.outcome == "excluded"]
    chosen_customers = d.loc[d.outcome != "excluded", "customer_id"].nunique()
    return {
        "customers": int(d.customer_id.nunique()),
        "audience": int(in_audience.sum()),
        "treatment": int(treated.customer_id.nunique()),
        "control": int(ctl.customer_id.nunique()),
        "actions": len(treated),
        "control_share": float(ctl.customer_id.nunique() / chosen_customers)
        if chosen_customers
        else None,
        "excluded": len(excluded),
        "excluded_by": {str(k): int(v) for k, v in excluded["rule"].value_counts().items()},
        "by_action": {
            f"{o}/{c}": int(v) for (o, c), v in treated.groupby(["offer", "channel"]).size().items()
        },
        "expected_value": float(treated.priority.sum()),
        "spend": float(treated.cost.sum()),
        "value_per_contact": float(treated.priority.mean()) if len(treated) else None,
        "allocation": method,
        "candidates_surviving_policy": len(status),
    }
