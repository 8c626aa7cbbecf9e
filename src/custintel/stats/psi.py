"""Population stability: how far each column's distribution moved between a reference
table and a current one, computed in the warehouse.

Bins come from the reference only: quantile edges of a numeric column (deciles by
default; fewer when values repeat), each value of a category or flag, an ``(other)`` bin
for values the reference never had, and a ``(missing)`` bin, so a column that starts to go
missing shows up too. PSI = sum over bins of (cur - ref) * ln(cur / ref), with shares
floored at 1e-4 so an empty bin does not give an infinite index. Common reading: below
0.1 stable, 0.1 to 0.25 worth watching, above 0.25 unstable (the thresholds are
arguments, set in the config).

A few queries per table whatever the number of columns (counts, order statistics, the
distinct values of each category column, then every bin count in one aggregate), so a million rows by a
hundred features never leave the warehouse; only the counts do.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

FLOOR = 1e-4
MISSING = "(missing)"
OTHER = "(other)"


@dataclass(frozen=True)
class Thresholds:
    watch: float = 0.1
    unstable: float = 0.25

    def flag(self, value: float) -> str:
        if value > self.unstable:
            return "unstable"
        if value > self.watch:
            return "watch"
        return "stable"


@dataclass(frozen=True)
class Bins:
    """How one column is cut: numeric edges, or category values."""

    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] = ()

    def labels(self) -> list[str]:
        if self.edges is None:
            return [*self.categories, OTHER, MISSING]
        e = self.edges
        inner = [f"[{_fmt(e[i])}, {_fmt(e[i + 1])})" for i in range(len(e) - 1)]
        return [f"< {_fmt(e[0])}", *inner, f">= {_fmt(e[-1])}", MISSING]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def psi(ref: np.ndarray, cur: np.ndarray) -> float:
    """The index from two vectors of bin shares."""
    r = np.maximum(np.asarray(ref, dtype="float64"), FLOOR)
    c = np.maximum(np.asarray(cur, dtype="float64"), FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _numeric(t: ir.Table, name: str) -> bool:
    kind = t.schema()[name]
    return kind.is_numeric() and not kind.is_boolean()


def _missing(col: ir.Value) -> ir.BooleanValue:
    if col.type().is_floating():
        return col.isnull() | col.isnan()
    return col.isnull()


def _text(col: ir.Value) -> ir.StringValue:
    """Category values as text, booleans spelled as Python does (``True``/``False``)."""
    if col.type().is_boolean():
        return ibis.cases((col, "True"), else_="False")
    return col.cast("string")


@ibis.udf.agg.builtin(signature=((dt.float64, dt.Array(dt.float64)), dt.Array(dt.float64)))
def quantile_disc(x, q):  # type: ignore[no-untyped-def]
    """DuckDB's ``quantile_disc``: the values at given fractions of the sorted column."""


def _lerp(a: float, b: float, t: float) -> float:
    """Linear interpolation written as numpy writes it (``numpy.quantile``'s default)."""
    if t >= 0.5:
        return b - (b - a) * (1 - t)
    return a + (b - a) * t


def _present(t: ir.Table, c: str) -> ir.FloatingValue:
    return ibis.cases((_missing(t[c]), ibis.null("float64")), else_=t[c].cast("float64"))


def _continuous_edges(reference: ir.Table, numeric: list[str], qs: list[float]) -> dict:
    """Minimum and inner quantiles from the backend's own continuous quantile."""
    aggs = {}
    for i, c in enumerate(numeric):
        aggs[f"m{i}"] = _present(reference, c).min()
        for j, q in enumerate(qs):
            aggs[f"q{i}_{j}"] = _present(reference, c).quantile(q)
    row = reference.aggregate(**aggs).execute().iloc[0]
    return {
        c: [row[f"m{i}"], *(row[f"q{i}_{j}"] for j in range(len(qs)))]
        for i, c in enumerate(numeric)
    }


def _numpy_edges(reference: ir.Table, numeric: list[str], qs: list[float]) -> dict:
    """Minimum and inner quantiles exactly as numpy computes them, on DuckDB.

    The warehouse returns order statistics (the values at exact positions of each sorted
    column) and the interpolation between neighbours is done here as numpy does it: the
    last bit of DuckDB's own ``quantile_cont`` differs from numpy's now and then, which
    moves a value that sits exactly on an edge into the next bin."""
    counts = (
        reference.aggregate(
            **{f"n{i}": _present(reference, c).count() for i, c in enumerate(numeric)}
        )
        .execute()
        .iloc[0]
    )
    plans = {}
    for i, c in enumerate(numeric):
        size = int(counts[f"n{i}"])
        if size:
            pairs = [
                (int(k), min(int(k) + 1, size - 1), k - int(k))
                for k in ((size - 1) * q for q in qs)
            ]
            plans[c] = (size, sorted({0, *(j for p in pairs for j in p[:2])}), pairs)
    # position j of `size` values is the fraction j / (size - 1); DuckDB rounds
    # (size - 1) * fraction back to exactly j
    aggs = {
        f"v{i}": quantile_disc(
            _present(reference, c),
            ibis.literal([j / max(plans[c][0] - 1, 1) for j in plans[c][1]], "array<float64>"),
        )
        for i, c in enumerate(numeric)
        if c in plans
    }
    row = reference.aggregate(**aggs).execute().iloc[0] if aggs else {}
    found: dict = {}
    for i, c in enumerate(numeric):
        if c not in plans:
            found[c] = [None]
            continue
        at = dict(zip(plans[c][1], (float(v) for v in row[f"v{i}"]), strict=True))
        found[c] = [at[0], *(_lerp(at[lo], at[hi], t) for lo, hi, t in plans[c][2])]
    return found


def _on_duckdb(t: ir.Table) -> bool:
    """Whether the table runs on DuckDB (a memtable runs on Ibis's default, DuckDB)."""
    try:
        return t.get_backend().name == "duckdb"
    except Exception:
        return True


def reference_bins(reference: ir.Table, columns: list[str], n_bins: int = 10) -> dict[str, Bins]:
    """Bins of every column from the reference table."""
    numeric = [c for c in columns if _numeric(reference, c)]
    qs = [float(q) for q in np.linspace(0, 1, n_bins + 1)[1:-1]]
    edges = _numpy_edges if _on_duckdb(reference) else _continuous_edges
    found = edges(reference, numeric, qs) if numeric else {}
    bins = {
        c: Bins(
            edges=(0.0,)
            if v[0] is None or pd.isna(v[0])
            else tuple(np.unique(np.array(v, float)).tolist())
        )
        for c, v in found.items()
    }
    for c in columns:
        if c in bins:
            continue
        col = reference[c]
        values = reference.filter(~_missing(col)).select(v=_text(col)).distinct().execute().v
        bins[c] = Bins(categories=tuple(sorted(str(v) for v in values)))
    return bins


def _exact(value: float) -> ir.FloatingValue:
    """A double literal the warehouse reads exactly: DuckDB parses ``0.0909...`` as a
    DECIMAL whose conversion to DOUBLE can be off by one bit, so the number goes in as
    text (which it converts correctly rounded)."""
    return ibis.literal(repr(float(value))).cast("float64")


def shares(table: ir.Table, bins: dict[str, Bins]) -> dict[str, np.ndarray]:
    """Share of rows in each bin of every column (one aggregate over the table)."""
    aggs: dict[str, ir.Value] = {"n": table.count()}
    for i, (c, b) in enumerate(bins.items()):
        col = table[c]
        gone = _missing(col)
        aggs[f"c{i}_missing"] = gone.sum()
        if b.edges is None:
            text = _text(col)
            for j, value in enumerate(b.categories):
                aggs[f"c{i}_{j}"] = ((text == value) & ~gone).sum()
            aggs[f"c{i}_present"] = (~gone).sum()
        else:
            x = col.cast("float64")
            # bin k holds values with exactly k edges at or below them (numpy's
            # searchsorted with side="right")
            for k, edge in enumerate(b.edges):
                aggs[f"c{i}_{k}"] = (~gone & (x >= _exact(edge))).sum()
    row = table.aggregate(**aggs).execute().iloc[0]
    n = max(int(row["n"]), 1)
    out = {}
    for i, (c, b) in enumerate(bins.items()):
        missing = int(row[f"c{i}_missing"] or 0)
        if b.edges is None:
            counts = [int(row[f"c{i}_{j}"] or 0) for j in range(len(b.categories))]
            other = int(row[f"c{i}_present"] or 0) - sum(counts)
            values = [*counts, other, missing]
        else:
            at_least = [int(row[f"c{i}_{k}"] or 0) for k in range(len(b.edges))]
            present = int(row["n"]) - missing
            cum = [present, *at_least, 0]
            values = [cum[k] - cum[k + 1] for k in range(len(b.edges) + 1)] + [missing]
        out[c] = np.array(values, dtype="float64") / n
    return out


def stability(
    reference: ir.Table | pd.DataFrame,
    current: ir.Table | pd.DataFrame,
    columns: list[str],
    thresholds: Thresholds | None = None,
) -> pd.DataFrame:
    """PSI per column with its flag, missing shares and the bin shares (for plots); the
    most moved first. Frames are accepted too (they are queried in DuckDB)."""
    thresholds = thresholds or Thresholds()
    ref = ibis.memtable(reference) if isinstance(reference, pd.DataFrame) else reference
    cur = ibis.memtable(current) if isinstance(current, pd.DataFrame) else current
    bins = reference_bins(ref, columns)
    ref_shares, cur_shares = shares(ref, bins), shares(cur, bins)
    rows = []
    for c in columns:
        r, k = ref_shares[c], cur_shares[c]
        value = psi(r, k)
        rows.append(
            {
                "feature": c,
                "psi": round(value, 6),
                "flag": thresholds.flag(value),
                "missing_ref": round(float(r[-1]), 6),
                "missing_cur": round(float(k[-1]), 6),
                "bins": bins[c].labels(),
                "ref_shares": r.round(6).tolist(),
                "cur_shares": k.round(6).tolist(),
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values(["psi", "feature"], ascending=[False, True]).reset_index(drop=True)
