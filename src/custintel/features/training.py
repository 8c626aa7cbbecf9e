"""Training tables: features as of several snapshot dates with the label that followed.

One row per (customer_id, as_of). A customer is eligible at a snapshot when they existed
before it and had not opted out of profiling by then (their latest profiling consent
before the snapshot is not a withdrawal). Several snapshots let models validate on later
dates than they train on, the way they will be used.
"""

from __future__ import annotations

import datetime as dt

import ibis.expr.types as ir

from custintel.core import consent
from custintel.features.definitions import Params, customer_features
from custintel.features.events import Events
from custintel.features.labels import Label, defined_for_all, label_values


def opted_out(events: Events, as_of: dt.date) -> ir.Table:
    """Customers whose latest profiling consent before ``as_of`` is a withdrawal (the
    consent service's answer, :mod:`custintel.core.consent`)."""
    return consent.withdrawn(consent.latest_status(events.consents, as_of, "profiling"))


def snapshot_rows(
    events: Events, label: Label, as_of: dt.date, params: Params | None = None
) -> ir.Table:
    """Eligible customers' features as of one snapshot with the label attached."""
    feats = customer_features(events, as_of, params)
    eligible = feats.anti_join(opted_out(events, as_of), "customer_id")
    lab = label_values(events, label, as_of)
    extra = [c for c in lab.columns if c not in ("customer_id", "label")]
    if defined_for_all(label):
        j = eligible.left_join(lab, eligible.customer_id == lab.customer_id)
        value = j.label.fill_null(0)
    else:
        j = eligible.join(lab, eligible.customer_id == lab.customer_id)
        value = j.label
    return j.select(
        *[j[c] for c in eligible.columns], *[j[c] for c in extra], label=value.cast("float64")
    )


def training_table(
    events: Events, label: Label, snapshots: list[dt.date], params: Params | None = None
) -> ir.Table:
    """All snapshots, one after the other (``union all``)."""
    if not snapshots:
        raise ValueError("a training table needs at least one snapshot date")
    parts = [snapshot_rows(events, label, d, params) for d in sorted(set(snapshots))]
    out = parts[0]
    for part in parts[1:]:
        out = out.union(part, distinct=False)
    return out
