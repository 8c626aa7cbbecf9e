"""A large synthetic shop for the feature benchmark, written straight into a warehouse.

The feature build reads clean tables and the identity map, so the benchmark writes those
directly (ingest and identity have their own benchmarks): N customers with one web-shop
profile each, about 20 orders per customer over three and a half years (returns, channels,
categories, missing quantities, discounts), e-mail, web, support, contact and consent
events. The same tables go to Parquet for the pandas contender.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START = np.datetime64("2022-01-01T00:00:00", "s").astype("int64")
END = np.datetime64("2025-09-30T00:00:00", "s").astype("int64")
CATEGORIES = ["apparel", "beauty", "books", "electronics", "garden", "home", "shoes", "toys"]


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pa.array(np.char.add(prefix, np.char.zfill(numbers.astype(str), 8)))


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(
        seconds.astype("datetime64[s]").astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC")
    )


def _pick(
    rng: np.random.Generator, values: list[str], n: int, p: list[float] | None = None
) -> pa.Array:
    codes = rng.choice(len(values), size=n, p=p).astype("int32")
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(values)).cast(pa.string())


def _per_customer(
    rng: np.random.Generator, first: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Event owners and times: ``counts[i]`` events for customer i after their start."""
    who = np.repeat(np.arange(len(counts)), counts)
    begin = first[who]
    when = begin + (rng.random(len(who)) * (END - begin)).astype("int64")
    return who, when


def tables(customers: int, orders_per_customer: float = 20.0, seed: int = 1) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    n = customers
    number = np.arange(1, n + 1)
    first = START + (
        rng.random(n) * (np.datetime64("2025-06-01", "s").astype("int64") - START)
    ).astype("int64")
    rate = rng.gamma(0.8, 1.0, n)
    rate *= orders_per_customer * n / rate.sum()
    out: dict[str, pa.Table] = {}
    out["customer_map"] = pa.table(
        {
            "source": pa.array(["shop"] * n),
            "source_id": _ids("W", number),
            "customer_id": _ids("CU", number),
        }
    )
    out["profile"] = pa.table({"customer_id": _ids("CU", number), "first_seen": _ts(first)})

    who, when = _per_customer(rng, first, rng.poisson(rate))
    m = len(who)
    ret = rng.random(m) < 0.06
    amount = np.round(rng.lognormal(3.5, 0.8, m), 2) * np.where(ret, -1, 1)
    qty = rng.integers(1, 6, m).astype("float64")
    qty[rng.random(m) < 0.03] = np.nan
    disc = np.where(rng.random(m) < 0.3, np.round(np.abs(amount) * 0.1, 2), 0.0)
    out["orders"] = pa.table(
        {
            "source": pa.array(["shop"] * m),
            "customer_ref": _ids("W", number[who]),
            "order_id": pa.array(np.arange(m).astype(str)),
            "order_ts": _ts(when),
            "amount": pa.array(amount).cast(pa.decimal128(18, 4)),
            "currency": pa.array(["GBP"] * m),
            "channel": _pick(rng, ["online", "store", "app"], m, [0.55, 0.35, 0.10]),
            "category": _pick(rng, CATEGORIES, m),
            "quantity": pa.array(qty, mask=np.isnan(qty)).cast(pa.int64()),
            "discount": pa.array(disc).cast(pa.decimal128(18, 4)),
            "is_return": pa.array(ret),
        }
    )

    who, when = _per_customer(rng, first, rng.poisson(15.0, n))
    k = len(who)
    out["email_events"] = pa.table(
        {
            "source": pa.array(["shop"] * k),
            "customer_ref": _ids("W", number[who]),
            "campaign_id": _pick(rng, [f"NL-{i:04d}" for i in range(200)], k),
            "event_type": _pick(
                rng, ["send", "open", "click", "unsubscribe"], k, [0.75, 0.18, 0.065, 0.005]
            ),
            "event_ts": _ts(when),
        }
    )

    who, when = _per_customer(rng, first, rng.poisson(10.0, n))
    k = len(who)
    logged = rng.random(k) < 0.6
    refs = np.where(logged, np.char.add("W", np.char.zfill(number[who].astype(str), 8)), None)
    out["web_events"] = pa.table(
        {
            "source": pa.array(["shop"] * k),
            "anonymous_id": _ids("A", number[who]),
            "customer_ref": pa.array(refs, type=pa.string()),
            "session_id": _ids("S", (when // 1800) % 10_000_000),
            "event_ts": _ts(when),
            "event_type": _pick(
                rng, ["product_view", "add_to_cart", "login", "purchase"], k, [0.6, 0.2, 0.15, 0.05]
            ),
        }
    )
    out["devices"] = pa.table(
        {"anonymous_id": _ids("A", number), "customer_id": _ids("CU", number)}
    )

    who, when = _per_customer(rng, first, rng.poisson(0.5, n))
    k = len(who)
    sat = rng.integers(1, 6, k).astype("float64")
    sat[rng.random(k) < 0.4] = np.nan
    out["support_tickets"] = pa.table(
        {
            "source": pa.array(["shop"] * k),
            "customer_ref": _ids("W", number[who]),
            "created_at": _ts(when),
            "satisfaction": pa.array(sat, mask=np.isnan(sat)).cast(pa.int64()),
        }
    )
    who, when = _per_customer(rng, first, rng.poisson(2.0, n))
    k = len(who)
    out["contacts"] = pa.table(
        {
            "source": pa.array(["shop"] * k),
            "customer_ref": _ids("W", number[who]),
            "campaign_id": _pick(rng, [f"CMP-{i}" for i in range(12)], k),
            "sent_at": _ts(when),
            "variant": _pick(rng, ["treatment", "control"], k, [0.8, 0.2]),
        }
    )
    who, when = _per_customer(rng, first, rng.poisson(1.0, n))
    k = len(who)
    out["consents"] = pa.table(
        {
            "source": pa.array(["shop"] * k),
            "customer_ref": _ids("W", number[who]),
            "channel": _pick(rng, ["email", "all"], k),
            "purpose": _pick(rng, ["marketing", "profiling"], k, [0.8, 0.2]),
            "status": _pick(rng, ["granted", "withdrawn"], k, [0.8, 0.2]),
            "event_ts": _ts(when),
        }
    )
    return out


SCHEMA_OF = {
    "customer_map": "identity",
    "devices": "identity",
    "profile": "customer",
    "orders": "clean",
    "email_events": "clean",
    "web_events": "clean",
    "support_tickets": "clean",
    "contacts": "clean",
    "consents": "clean",
}


def write(data: dict[str, pa.Table], warehouse: Path, parquet: Path) -> dict[str, int]:
    """Every table into the DuckDB file (its schema) and into ``parquet/<name>.parquet``."""
    parquet.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse))
    for name, table in data.items():
        schema = SCHEMA_OF[name]
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.register("frame", table)
        con.execute(f'CREATE OR REPLACE TABLE "{schema}"."{name}" AS SELECT * FROM frame')
        con.unregister("frame")
        pq.write_table(table, parquet / f"{name}.parquet")
    con.close()
    return {name: t.num_rows for name, t in data.items()}
