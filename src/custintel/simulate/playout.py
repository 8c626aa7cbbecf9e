"""Playing any campaign's decisions out in a simulated retailer.

Hand it decisions (person, offer, channel, treatment or control) taken on a date, and it
says what each person then does, from the same heterogeneous effect model as the
simulator's own campaigns (:mod:`custintel.simulate.campaigns`, sleeping dogs included):

- ``outcomes``: every decision's potential outcomes, the expected purchases in the effect
  window without the contact (``y0``) and with it (``y1``), their difference and its
  value at the person's mean order value. These are truths a campaign cannot see; they
  are what targeting and the measurement of lift are judged against.
- what happened, as the retailer's systems would record it: a contact history in the
  marketing team's format, the treated people's extra web-shop orders in the shop's
  format, the orders a contact put off (``removed_orders``), and the campaign e-mails'
  send, open and click events.

A person treated with several actions responds once, to the action with the strongest
effect: contacts do not add up. Held-out people are untouched. The draws are seeded, so
the same decisions play out the same way.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from custintel.simulate import engagement as eng
from custintel.simulate.campaigns import Campaign, Response, multipliers, potential_outcomes
from custintel.simulate.layout import PROFILES
from custintel.simulate.output import Formatter, lookup
from custintel.simulate.purchases import CATEGORIES, Calendar


class OfferEffect(BaseModel):
    """How strongly an offer works: the scale of the positive response and the share of
    purchases sleeping dogs drop when contacted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lift: float = Field(default=1.0, ge=0)
    annoyance: float = Field(default=0.4, ge=0, le=1)


@dataclass
class PlayedOut:
    outcomes: pd.DataFrame
    contacts: pd.DataFrame
    added_orders: pd.DataFrame
    removed_orders: pd.DataFrame
    emails: pd.DataFrame


def _calendar(meta: dict) -> Calendar:  # type: ignore[type-arg]
    cfg = meta["config"]
    start = pd.Timestamp(cfg["start"]).date()
    days = 7 * (cfg["history_weeks"] + cfg["future_weeks"])
    return Calendar(start, days, cfg.get("seasonal", True))


def play_out(
    sim_dir: Path,
    decisions: pd.DataFrame,
    *,
    campaign_id: str,
    week: float | None = None,
    effects: dict[str, OfferEffect] | None = None,
    response: Response | None = None,
    seed: int = 0,
) -> PlayedOut:
    """Play ``decisions`` (person_id, offer, channel, variant) out at ``week`` (weeks from
    the start of history; default the simulation's as-of date)."""
    import json

    meta = json.loads((sim_dir / "truth" / "simulation.json").read_text())
    cfg = meta["config"]
    w = float(cfg["history_weeks"] if week is None else week)
    response = response or Response.model_validate(cfg.get("response", {}))
    effects = effects or {}
    calendar = _calendar(meta)
    cal_w, op_w = calendar.operational()
    start, stop = np.interp([w, w + response.effect_weeks], cal_w, op_w)
    window = float(stop - start)

    people = pd.read_parquet(sim_dir / "truth" / "people.parquet").set_index("person_id")
    orders = pd.read_parquet(sim_dir / "truth" / "orders.parquet")
    d = decisions[["person_id", "offer", "channel", "variant"]].reset_index(drop=True)
    missing = ~d.person_id.isin(people.index)
    if missing.any():
        raise ValueError(f"play_out: {int(missing.sum())} decisions name no simulated person")
    bad = ~d.variant.isin(("treatment", "control"))
    if bad.any():
        raise ValueError(
            f"play_out: variant must be treatment or control, not {d.variant[bad].iloc[0]!r}"
        )

    # What the effect depends on, observed at the send date.
    buys = orders[~orders.is_return]
    before = buys[buys.week < w]
    recent = before[before.week >= w - 13].groupby("person_id").size()
    last = before.groupby("person_id").week.max()
    pid = d.person_id.to_numpy()
    pp = people.loc[pid]
    recent_n = recent.reindex(pid, fill_value=0).to_numpy()
    since = w - last.reindex(pid).to_numpy()
    alive = pp.death_week.to_numpy() > w
    m = np.ones(len(d))
    for offer, rows in d.groupby("offer").groups.items():
        e = effects.get(str(offer), OfferEffect())
        c = Campaign(campaign_id=campaign_id, week=w, lift=e.lift, annoyance=e.annoyance)
        i = np.asarray([d.index.get_loc(r) for r in rows])
        m[i] = multipliers(pp.discount_affinity.to_numpy()[i], recent_n[i], since[i], c, response)
    lam, p = pp.lam.to_numpy(), pp.p.to_numpy()
    y0, y1 = potential_outcomes(lam, p, alive, m, window)
    mean_order = (pp.spend_p / pp.nu).to_numpy()
    outcomes = d.assign(
        alive=alive,
        recent_orders_13w=recent_n,
        weeks_since_last_order=since,
        multiplier=m,
        y0=y0,
        y1=y1,
        effect=y1 - y0,
        value_effect=(y1 - y0) * mean_order,
    )

    # Realise it: one response per treated person, to the strongest action.
    rng = np.random.default_rng([seed, zlib.crc32(campaign_id.encode())])
    treated = outcomes[outcomes.variant == "treatment"]
    strongest = treated.loc[
        treated.assign(s=(treated.multiplier - 1).abs())
        .sort_values(["person_id", "s"], ascending=[True, False], kind="stable")
        .drop_duplicates("person_id")
        .index
    ]
    who = strongest.person_id.to_numpy()
    sm = strongest.multiplier.to_numpy()
    in_window = buys[(buys.week >= w) & (buys.week < w + response.effect_weeks)]
    keep = pd.Series(np.minimum(sm, 1.0), index=who)
    at_risk = in_window[in_window.person_id.isin(who[sm < 1.0])]
    lost = at_risk[rng.random(len(at_risk)) >= keep.reindex(at_risk.person_id).to_numpy()]
    gain = strongest[strongest.multiplier > 1.0]
    g = people.loc[gain.person_id.to_numpy()]
    count = rng.poisson(gain.alive.to_numpy() * (gain.multiplier.to_numpy() - 1) * g.lam * window)
    owner = np.repeat(gain.person_id.to_numpy(), count)
    op = start + rng.random(owner.size) * window
    po = people.loc[owner]
    account = (
        buys[buys.account.notna()].sort_values("week").drop_duplicates("person_id", keep="last")
    )
    account = account.set_index("person_id").account
    added = pd.DataFrame(
        {
            "order_id": [f"P{campaign_id[:12]}-{i:07d}" for i in range(owner.size)],
            "person_id": owner,
            "account": account.reindex(owner).to_numpy(),
            "week": np.interp(op, op_w, cal_w),
            "amount": np.round(rng.gamma(po.spend_p.to_numpy(), 1.0 / po.nu.to_numpy()), 2),
            "category": lookup(rng.integers(0, len(CATEGORIES), owner.size), CATEGORIES),
        }
    )
    added = added[added.account.notna()].reset_index(drop=True)

    contacts = d.assign(week=w)
    e = treated[treated.channel == "email"].drop_duplicates("person_id")
    engage = eng.Engagement.model_validate(cfg.get("engagement", {}))
    death = people.death_week.to_numpy()
    open_rate = people.open_rate.to_numpy()
    row = people.index.get_indexer(e.person_id.to_numpy())
    emails = eng.campaign_emails(row, w, death, open_rate, engage, rng)
    emails["person_id"] = people.index.to_numpy()[emails.pop("person").to_numpy()]
    emails["event"] = lookup(emails.event.to_numpy(), eng.EMAIL_EVENTS)
    return PlayedOut(outcomes, contacts, added, lost[["order_id", "person_id", "week"]], emails)


def write_played_out(sim_dir: Path, played: PlayedOut, campaign_id: str) -> dict[str, int]:
    """Write what happened in the formats of the simulated systems, beside the originals
    (``marketing/contacts_<id>.csv``, ``shop/orders_<id>.csv``, ``email/campaign_<id>.csv``)
    and the truth under ``truth/playout/<id>/``."""
    import json

    meta = json.loads((sim_dir / "truth" / "simulation.json").read_text())
    start = pd.Timestamp(meta["config"]["start"]).date()
    records = pd.read_parquet(sim_dir / "truth" / "records.parquet")
    crm = records[records.system == "crm"].drop_duplicates("person_id").set_index("person_id")
    folder, columns = PROFILES["crm"]
    book = pd.read_csv(
        sim_dir / folder / "customers.csv",
        usecols=[columns["source_id"], columns["email"]],
        dtype=str,
        keep_default_na=False,
    ).set_index(columns["source_id"])[columns["email"]]
    crm["email"] = book.reindex(crm.source_id).to_numpy()
    truth = sim_dir / "truth" / "playout" / campaign_id
    truth.mkdir(parents=True, exist_ok=True)
    played.outcomes.to_parquet(truth / "outcomes.parquet", index=False)
    played.removed_orders.to_parquet(truth / "removed_orders.parquet", index=False)
    with Formatter(start) as fmt:
        c = played.contacts
        fmt.write(
            pd.DataFrame(
                {
                    "campaign": campaign_id,
                    "customer": crm.source_id.reindex(c.person_id).fillna("").to_numpy(),
                    "channel": c.channel.to_numpy(),
                    "week": c.week.to_numpy(float),
                    "group": c.variant.to_numpy(),
                    "offer": c.offer.to_numpy(),
                }
            ),
            f'campaign, customer, channel, {fmt.ts("week")} AS sent, "group", offer',
            sim_dir / "marketing" / f"contacts_{campaign_id}.csv",
        )
        a = played.added_orders
        fmt.write(
            a.drop(columns=["person_id"]).assign(category=a.category.astype(str)),
            f"order_id AS order_no, account AS account_id, {fmt.ts('week')} AS created, "
            "printf('%.2f', amount) AS total, "
            f"'{meta['config'].get('currency', 'GBP')}' AS currency, category, 1 AS items, "
            "'0.00' AS discount, 'false' AS refund",
            sim_dir / "shop" / f"orders_{campaign_id}.csv",
        )
        em = played.emails
        fmt.write(
            pd.DataFrame(
                {
                    "contact_id": crm.source_id.reindex(em.person_id).fillna("").to_numpy(),
                    "address": crm.email.reindex(em.person_id).fillna("").to_numpy(),
                    "event": em.event.astype(str).to_numpy(),
                    "week": em.week.to_numpy(float),
                }
            ),
            f"contact_id, address, '{campaign_id}' AS mailing, event, "
            f"{fmt.ts('week')} AS event_time",
            sim_dir / "email" / f"campaign_{campaign_id}.csv",
        )
    return {
        "decisions": len(played.outcomes),
        "added_orders": len(played.added_orders),
        "removed_orders": len(played.removed_orders),
        "email_events": len(played.emails),
    }
