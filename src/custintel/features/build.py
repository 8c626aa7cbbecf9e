"""Building feature tables in the warehouse: ``features.customer``, ``features.catalog``
and the training tables ``features.train_<label>``.

The definitions (pure Ibis) live in :mod:`custintel.features.definitions`; this module
decides the parameters from the config and the data (currency, categories), checks that a
label's horizon is covered by the data, and writes tables idempotently: building the same
as-of date again replaces its rows, never adds to them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis
import pandas as pd

from custintel.core.config import ProjectConfig
from custintel.core.contracts import CONTRACTS
from custintel.core.errors import StageError
from custintel.core.lineage import append_ops, now, record_lineage
from custintel.core.warehouse import Warehouse
from custintel.features.catalog import FeatureSet
from custintel.features.definitions import Params, customer_features, feature_set
from custintel.features.events import Events, resolved
from custintel.features.labels import Label, parse_label
from custintel.features.training import opted_out, training_table

SCHEMA = "features"
VERSION_PROBE = dt.date(2000, 1, 1)


@dataclass
class BuildResult:
    as_of: str
    rows: int
    features: int
    version: str
    currency: str | None
    seconds: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingResult:
    label: str
    table: str
    rows: int
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    version: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _require_identity(wh: Warehouse) -> None:
    if not wh.exists("identity", "customer_map"):
        raise StageError(
            "features: customers are not resolved yet (run `custintel identity resolve`)"
        )


def _currency(wh: Warehouse, cfg: ProjectConfig) -> tuple[str | None, dict[str, float]]:
    """The reporting currency and the rate of every currency the orders use.

    Orders in a currency without a rate would make spend meaningless, so they stop the
    build with a message naming the currency and how many orders use it.
    """
    if not wh.exists("clean", "orders"):
        return cfg.features.currency, {}
    o = wh.table("clean", "orders")
    counts = o.group_by("currency").aggregate(n=o.count()).execute()
    counts = counts.sort_values(["n", "currency"], ascending=[False, True])
    found = {str(c): int(n) for c, n in zip(counts.currency, counts.n, strict=True)}
    if not found:
        return cfg.features.currency, {}
    reporting = cfg.features.currency or next(iter(found))
    rates = {reporting: 1.0, **{k.upper(): v for k, v in cfg.features.fx_rates.items()}}
    missing = {c: n for c, n in found.items() if c not in rates}
    if missing:
        listed = ", ".join(f"{c} ({n:,} orders)" for c, n in missing.items())
        raise StageError(
            f"features: orders in {listed} have no rate to the reporting currency {reporting}; "
            f"add features.fx_rates (units of {reporting} per unit) or set features.currency"
        )
    return reporting, {c: rates[c] for c in found}


def events_for(wh: Warehouse, cfg: ProjectConfig) -> tuple[Events, str | None]:
    """The resolved events with every amount in the reporting currency."""
    _require_identity(wh)
    reporting, rates = _currency(wh, cfg)
    return resolved(wh, rates), reporting


def params_for(wh: Warehouse, cfg: ProjectConfig) -> Params:
    """The feature-set parameters; categories from config or the most frequent ones in the
    order history (the list is part of the feature-set version)."""
    fc = cfg.features
    categories = fc.categories
    if categories is None:
        categories = []
        if wh.exists("clean", "orders") and fc.max_categories:
            o = wh.table("clean", "orders")
            o = o.filter(o.category.notnull())
            top = o.group_by("category").aggregate(n=o.count()).execute()
            top = top.sort_values(["n", "category"], ascending=[False, True])
            categories = sorted(top.category.astype(str).head(fc.max_categories))
    return Params(
        windows=tuple(fc.windows),
        engagement_windows=tuple(fc.engagement_windows),
        half_life_days=fc.half_life_days,
        categories=tuple(categories),
        holiday_months=tuple(fc.holiday_months),
    )


_VERSIONS: dict[str, tuple[FeatureSet, str]] = {}


def version_of(params: Params) -> tuple[FeatureSet, str]:
    """The feature set and its version: the hash of its declarations and of the SQL its
    definitions compile to (on schema-only tables, for a fixed probe date). Remembered
    per parameters: compiling the SQL takes about a second, and one scoring asks several
    times."""
    key = repr(params)
    if key not in _VERSIONS:
        fs = feature_set(params)
        sql = ibis.to_sql(
            customer_features(Events.unbound(), VERSION_PROBE, params), dialect="duckdb"
        )
        _VERSIONS[key] = (fs, fs.version(str(sql)))
    return _VERSIONS[key]


def _utc_day(value: Any) -> dt.date:
    """The UTC date of a timestamp (Spark hands back naive UTC, DuckDB aware)."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.date()


def last_order_day(wh: Warehouse) -> dt.date | None:
    if not wh.exists("clean", "orders"):
        return None
    last = wh.table("clean", "orders").order_ts.max().execute()
    return None if pd.isna(last) else _utc_day(last)


def last_data_day(wh: Warehouse) -> dt.date | None:
    """The day of the latest event in any clean table (by each contract's timestamp)."""
    days = []
    for name in wh.tables("clean"):
        if name not in CONTRACTS:
            continue
        column = CONTRACTS[name].timestamp
        t = wh.table("clean", name)
        if column in t.columns:
            last = t[column].max().execute()
            if not pd.isna(last):
                days.append(_utc_day(last))
    return max(days) if days else None


def check_as_of(
    wh: Warehouse, cfg: ProjectConfig, as_of: dt.date, what: str, *, projection: bool = False
) -> dt.date | None:
    """Refuse an as-of date after the data: features, segments or scores as of 2030 on data
    ending in 2025 would describe customers as if they existed then. Up to
    ``features.max_days_after_data`` days after the last event is ordinary (a nightly run
    as of today). With ``projection`` the date is allowed and the last day with data is
    returned, for the caller to record the rows as a projection."""
    last = last_data_day(wh)
    if last is None:
        return None
    latest = last + dt.timedelta(days=cfg.features.max_days_after_data)
    if as_of <= latest:
        return None
    if not projection:
        raise StageError(
            f"{what}: as of {as_of} lies after the data: the last event is on {last} "
            f"(features.max_days_after_data allows up to {latest}); pass --projection to "
            "compute it anyway, recorded as a projection in ops.projections"
        )
    return last


def record_projection(
    wh: Warehouse, table: str, as_of: dt.date, last: dt.date, run_id: str
) -> None:
    """Mark the rows of ``table`` as of ``as_of`` as a projection beyond the data."""
    wh.delete_where(
        "ops", "projections", f"table_name = '{table}' AND as_of = '{as_of.isoformat()}'"
    )
    append_ops(
        wh,
        "projections",
        [
            {
                "table_name": table,
                "as_of": as_of.isoformat(),
                "last_data_day": last.isoformat(),
                "run_id": run_id,
                "recorded_at": now(),
            }
        ],
    )


def default_as_of(wh: Warehouse, cfg: ProjectConfig) -> dt.date:
    """The configured as-of date, else the day after the last order (all data is before it)."""
    if cfg.features.as_of is not None:
        return cfg.features.as_of
    last = last_order_day(wh)
    if last is None:
        raise StageError("features: no orders yet, so no default as-of date (give --as-of)")
    return last + dt.timedelta(days=1)


def _write_catalog(wh: Warehouse, fs: FeatureSet, version: str) -> None:
    wh.put(SCHEMA, "catalog", fs.catalog(version))


def _lineage(
    wh: Warehouse,
    cfg: ProjectConfig,
    run_id: str,
    source: str,
    table: str,
    started: dt.datetime,
    version: str,
    rows: int,
) -> None:
    """A feature table written from the clean tables and the customer map."""
    record_lineage(
        wh,
        run_id=run_id,
        stage="features",
        source=source,
        input="clean.*, identity.customer_map",
        output=f"{SCHEMA}.{table}",
        config_hash=cfg.config_hash(),
        started_at=started,
        input_hash=version,
        rows_out=rows,
    )


def profiling_allowed(
    table: ibis.Table, events: Events, as_of: dt.date, cfg: ProjectConfig, use: str
) -> ibis.Table:
    """``table`` without the customers who had opted out of profiling before ``as_of``,
    when ``consent.exclude_opted_out_from`` names ``use`` (docs/consent.md)."""
    if use not in cfg.consent.exclude_opted_out_from:
        return table
    return table.anti_join(opted_out(events, as_of), "customer_id")


def build_features(wh: Warehouse, cfg: ProjectConfig, as_of: dt.date, run_id: str) -> BuildResult:
    """Write the features of every customer as of ``as_of`` into ``features.customer``."""
    started = now()
    ev, currency = events_for(wh, cfg)
    params = params_for(wh, cfg)
    fs, version = version_of(params)
    staged: list[str] = []

    def stage(part: ibis.Table) -> ibis.Table:
        """DuckDB: each family into a temporary table, one aggregation at a time."""
        if wh.kind != "duckdb":
            return part
        name = f"_features_part_{len(staged)}"
        staged.append(name)
        return wh.con.create_table(name, obj=part, temp=True, overwrite=True)

    with wh.unordered_writes():
        expr = customer_features(ev, as_of, params, stage)
    expr = profiling_allowed(expr, ev, as_of, cfg, "features")
    expr = expr.mutate(feature_set_version=ibis.literal(version))
    note = ""
    if wh.exists(SCHEMA, "customer"):
        stored = wh.table(SCHEMA, "customer")
        versions = set(
            stored.select("feature_set_version")
            .distinct()
            .execute()
            .feature_set_version.astype(str)
        )
        if set(stored.columns) != set(expr.columns) or versions - {version}:
            wh.drop(SCHEMA, "customer")
            note = f"feature set changed (was {', '.join(sorted(versions))}): earlier dates dropped"
        else:
            wh.delete_where(SCHEMA, "customer", f"as_of = DATE '{as_of.isoformat()}'")
    with wh.unordered_writes(), wh.transaction():
        wh.append(SCHEMA, "customer", expr)
        _write_catalog(wh, fs, version)
    for name in staged:
        wh.sql(f'DROP TABLE IF EXISTS temp."{name}"')
    t = wh.table(SCHEMA, "customer")
    rows = int(t.filter(t.as_of == ibis.literal(as_of)).count().execute())
    _lineage(wh, cfg, run_id, "customers", "customer", started, version, rows)
    return BuildResult(
        as_of=as_of.isoformat(),
        rows=rows,
        features=len(fs.features),
        version=version,
        currency=currency,
        seconds=round((now() - started).total_seconds(), 2),
        note=note,
    )


def check_horizon(wh: Warehouse, label: Label, snapshots: list[dt.date]) -> None:
    """A label needs data over its whole horizon; otherwise every customer would look like
    a churner. The message names the snapshot, what it needs and where the data ends."""
    last = last_order_day(wh)
    if last is None:
        raise StageError(f"features: label {label.name} needs orders; there are none")
    if label.kind == "response":
        return
    for d in snapshots:
        end = d + dt.timedelta(days=label.horizon_days - 1)
        if end > last:
            raise StageError(
                f"features: label {label.name} as of {d} needs orders up to {end}; "
                f"the orders end on {last} (choose an earlier snapshot or a shorter horizon)"
            )


def campaign_dates(wh: Warehouse, campaign: str) -> list[dt.date]:
    """The first contact day of a campaign: the as-of date of its response label."""
    if not wh.exists("clean", "contacts"):
        raise StageError("features: no contact history (map a `contacts` source)")
    c = wh.table("clean", "contacts")
    first = c.filter(c.campaign_id == campaign).sent_at.min().execute()
    if pd.isna(first):
        known = sorted(c.campaign_id.distinct().execute().astype(str))
        raise StageError(
            f"features: no campaign {campaign!r} in the contact history (known: {', '.join(known[:10])})"
        )
    return [_utc_day(first)]


def build_training(
    wh: Warehouse,
    cfg: ProjectConfig,
    label_name: str,
    snapshots: list[dt.date] | None,
    run_id: str,
) -> TrainingResult:
    """Write ``features.train_<label>``: eligible customers per snapshot with the label."""
    started = now()
    try:
        label = parse_label(
            label_name, cfg.features.response_window_days, cfg.features.high_value_spend
        )
    except ValueError as exc:
        raise StageError(f"features: {exc}") from None
    if label.kind == "response" and not snapshots:
        snapshots = campaign_dates(wh, label.campaign or "")
    snapshots = sorted(set(snapshots or cfg.features.snapshots))
    if not snapshots:
        raise StageError(
            f"features: no snapshots for {label.name} (give --snapshots or set features.snapshots)"
        )
    check_horizon(wh, label, snapshots)
    ev, _ = events_for(wh, cfg)
    params = params_for(wh, cfg)
    _, version = version_of(params)
    expr = training_table(ev, label, snapshots, params).mutate(
        feature_set_version=ibis.literal(version)
    )
    with wh.unordered_writes():
        wh.replace(SCHEMA, label.table, expr)
    t = wh.table(SCHEMA, label.table)
    per = t.group_by("as_of").aggregate(rows=t.count(), label_mean=t.label.mean()).execute()
    per = per.sort_values("as_of")
    snaps = []
    for r in per.itertuples():
        d = pd.Timestamp(r.as_of).date()
        out = int(opted_out(ev, d).count().execute())
        snaps.append(
            {
                "as_of": d.isoformat(),
                "rows": int(r.rows),
                "label_mean": round(float(r.label_mean), 4),
                "opted_out": out,
            }
        )
    rows = int(t.count().execute())
    _lineage(wh, cfg, run_id, label.name, label.table, started, version, rows)
    return TrainingResult(
        label=label.name,
        table=f"{SCHEMA}.{label.table}",
        rows=rows,
        snapshots=snaps,
        version=version,
        seconds=round((now() - started).total_seconds(), 2),
    )


__all__ = [
    "BuildResult",
    "TrainingResult",
    "build_features",
    "build_training",
    "default_as_of",
    "events_for",
    "params_for",
    "version_of",
]
