"""Population stability: how far each column's distribution moved between a reference
table and a current one, computed in the warehouse.

Bins come from the reference only: quantile edges of a numeric column (deciles by
default; fewer when values repeat), each value of a category or flag, an ``(other)`` bin
for values the reference never had, and a ``(missing)`` bin, so a column that starts to go
missing shows up too. PSI = sum over bins of (cur - ref) * ln(cur / ref), with shares
floored at 1e-4 so an empty bin does not give an infinite index. Common reading: below
0.1 stable, 0.1 to 0.25 worth watching, above 0.25 unstable (the thresholds are
arguments, set in the config).

Three queries per table whatever the number of columns (quantiles, the distinct values
of category columns, then every bin count in one aggregate), so a million rows by a
hundred features never leave the warehouse; only the counts do.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
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


def reference_bins(reference: ir.Table, columns: list[str], n_bins: int = 10) -> dict[str, Bins]:
    """Bins of every column from the reference table (two queries)."""
    numeric = [c for c in columns if _numeric(reference, c)]
    bins: dict[str, Bins] = {}
    if numeric:
        qs = list(np.linspace(0, 1, n_bins + 1)[1:-1])
        aggs = {}
        for i, c in enumerate(numeric):
            x = reference[c].cast("float64")
            x = ibis.cases((_missing(reference[c]), ibis.null("float64")), else_=x)
            aggs[f"m{i}"] = x.min()
            for j, q in enumerate(qs):
                aggs[f"q{i}_{j}"] = x.quantile(float(q))
        row = reference.aggregate(**aggs).execute().iloc[0]
        for i, c in enumerate(numeric):
            low = row[f"m{i}"]
            if pd.isna(low):
                bins[c] = Bins(edges=(0.0,))
                continue
            found = [float(low), *(float(row[f"q{i}_{j}"]) for j in range(len(qs)))]
            bins[c] = Bins(edges=tuple(float(e) for e in np.unique(found)))
    for c in columns:
        if c in bins:
            continue
        col = reference[c]
        values = reference.filter(~_missing(col)).select(v=_text(col)).distinct().execute().v
        bins[c] = Bins(categories=tuple(sorted(str(v) for v in values)))
    return bins


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
                aggs[f"c{i}_{k}"] = (~gone & (x >= edge)).sum()
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
