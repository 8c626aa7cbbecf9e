"""Fitting a segmentation from a feature snapshot: pure computation, no I/O.

The steps, each recorded in the summary the report shows: check the features, set the
rule segments aside, prepare the matrix, choose k (unless fixed), cluster, merge segments
under the minimum size, name them, fit the surrogate tree a CRM can run, and validate
(distinctness per feature, bootstrap stability).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from custintel.core.config import SegmentsConfig
from custintel.core.errors import NotEnoughDataError, StageError
from custintel.segments.choose import choose, elbow, evaluate
from custintel.segments.methods import CHOOSES_K, Clusterer
from custintel.segments.model import (
    EARLY_ID,
    NO_PURCHASE_ID,
    SegmentModel,
    early_name,
    rfm_ids,
)
from custintel.segments.prepare import Preparation, check_features
from custintel.segments.profile import distinguishing, merge_small, persona_names, profiles
from custintel.segments.validate import bootstrap_stability, distinctness

Progress = Callable[[str, int, int], None]
PROJECTION_ROWS = 3000
TREE_ROWS = 500_000


@dataclass
class Fitted:
    model: SegmentModel
    assignments: pd.DataFrame
    summary: dict[str, Any]
    data_hash: str


def data_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    """A short hash of the rows a model was fitted on (ids and feature values)."""
    cols = [c for c in ["customer_id", *columns] if c in frame]
    hashed = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _rfm(frame: pd.DataFrame, version: str, as_of: str, features: list[str]) -> Fitted:
    for col in ("rfm_recency_score", "rfm_frequency_score", "purchase_count"):
        if col not in frame:
            raise StageError(f"segments: the rfm method needs the feature {col!r}")
    ids = rfm_ids()
    model = SegmentModel("rfm", [], 0, version, as_of, names={v: k for k, v in ids.items()})
    out = model.assign(frame)
    prof = profiles(frame, out.segment_id, [f for f in features if f in frame])
    summary = {
        "method": "rfm",
        "k": int(out.segment_id.nunique()),
        "reason": "classic recency x frequency score grid (docs/segments.md#rfm)",
        "clustered": 0,
        "customers": len(frame),
        "profiles": _profile_records(prof, model.names, {}),
        "rules": model.to_text(),
        "sql": model.to_sql(),
        "surrogate": {"fidelity": 1.0, "note": "the rules are the segments"},
    }
    return Fitted(
        model, out, summary, data_hash(frame, ["rfm_recency_score", "rfm_frequency_score"])
    )


def _profile_records(prof: pd.DataFrame, names: dict[str, str], top: dict) -> list[dict]:
    rows = []
    for sid, r in prof.iterrows():
        row = {"segment_id": str(sid), "segment_name": names.get(str(sid), str(sid))}
        row.update({c: (None if pd.isna(v) else float(v)) for c, v in r.items()})
        row["customers"] = int(r.customers)
        row["distinguishing"] = top.get(str(sid), [])
        rows.append(row)
    return sorted(rows, key=lambda x: (-x["customers"], x["segment_id"]))


def _surrogate(
    frame: pd.DataFrame, labels: np.ndarray, cfg: SegmentsConfig, features: list[str]
) -> tuple[DecisionTreeClassifier, list[str], dict[str, Any]]:
    """A shallow tree on a few raw features that imitates the clustering."""
    n = len(frame)
    idx = np.arange(n)
    if n > TREE_ROWS:
        idx = np.sort(np.random.default_rng(cfg.seed).choice(n, TREE_ROWS, replace=False))
    X = frame[features].iloc[idx].apply(pd.to_numeric, errors="coerce").astype("float64")
    y = labels[idx]
    leaf = max(5, int(0.001 * len(X)))

    def tree() -> DecisionTreeClassifier:
        return DecisionTreeClassifier(
            max_depth=cfg.surrogate_depth, min_samples_leaf=leaf, random_state=cfg.seed
        )

    full = tree().fit(X, y)
    ranked = np.argsort(-full.feature_importances_, kind="stable")
    chosen = [features[i] for i in ranked[: cfg.surrogate_features]]
    stratify = y if pd.Series(y).value_counts().min() >= 2 else None
    tr, te = train_test_split(
        np.arange(len(X)), test_size=0.3, random_state=cfg.seed, stratify=stratify
    )
    held = tree().fit(X.iloc[tr][chosen], y[tr])
    fidelity = float((held.predict(X.iloc[te][chosen]) == y[te]).mean())
    final = tree().fit(X[chosen], y)
    in_sample = float((final.predict(X[chosen]) == y).mean())
    return (
        final,
        chosen,
        {
            "fidelity": fidelity,
            "fidelity_in_sample": in_sample,
            "depth": cfg.surrogate_depth,
            "features": chosen,
            "leaves": int(final.get_n_leaves()),
            "rows": len(X),
        },
    )


def _manual_merges(
    wanted: dict[str, str],
    labels: np.ndarray,
    mapping: np.ndarray,
    names: dict[str, str],
    merges: list[dict[str, object]],
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Merge segments by automatic name as configured (``segments.merge``), record each,
    and number the remaining segments by size again; a merged segment takes the name of
    the segment it joined."""
    by_name = {n: int(s[1:]) - 1 for s, n in names.items()}
    labels, mapping = labels.copy(), mapping.copy()
    gone: set[int] = set()
    for source, target in wanted.items():
        for name in (source, target):
            if name not in by_name:
                raise StageError(
                    f"segments.merge: no segment is named {name!r} (the automatic names "
                    f"are {', '.join(sorted(by_name))})"
                )
        src, dst = by_name[source], by_name[target]
        if dst in gone or src == dst:
            raise StageError(
                f"segments.merge: {source!r} cannot join {target!r}, which is itself merged"
            )
        merges.append(
            {
                "segment": src + 1,
                "into": dst + 1,
                "customers": int((labels == src).sum()),
                "reason": f"segments.merge in the configuration: {source} into {target}",
            }
        )
        labels[labels == src] = dst
        mapping[mapping == src] = dst
        gone.add(src)
    sizes = np.bincount(labels, minlength=len(names))
    alive = sorted(set(range(len(names))) - gone, key=lambda c: (-sizes[c], c))
    renumber = np.zeros(len(names), dtype=int)
    for i, c in enumerate(alive):
        renumber[c] = i
    kept = {f"S{renumber[c] + 1}": names[f"S{c + 1}"] for c in alive}
    return renumber[labels], renumber[mapping], kept


def fit_segments(
    frame: pd.DataFrame,
    catalog: pd.DataFrame,
    cfg: SegmentsConfig,
    *,
    version: str,
    as_of: str,
    progress: Progress | None = None,
) -> Fitted:
    """Fit the configured method on one feature snapshot (one row per customer)."""
    method, features = cfg.method, list(cfg.features)
    if method == "rfm":
        return _rfm(frame, version, as_of, features)
    check_features(frame, features, catalog, values=False)
    if "purchase_count" not in frame:
        raise StageError("segments: the feature table has no purchase_count")
    history = pd.to_numeric(frame.purchase_count, errors="coerce").fillna(0).to_numpy()
    inside = history >= cfg.min_purchases
    F = frame[inside].reset_index(drop=True)
    n = len(F)
    fixed = cfg.k
    least = 10 * (fixed or cfg.k_range[0]) if method in CHOOSES_K else 50
    if n < least:
        what = f"k={fixed}" if fixed else f"the smallest k={cfg.k_range[0]}"
        raise NotEnoughDataError(
            f"segments: {n:,} customers with at least {cfg.min_purchases} purchases are too "
            f"few for {what} (need at least {least:,}, ten per segment)"
        )
    check_features(F, features, catalog)  # among the customers that are clustered
    step, began, current = 0, time.perf_counter(), "preparing"
    timings: dict[str, float] = {}

    def tick(label: str) -> None:
        nonlocal step, began, current
        now = time.perf_counter()
        timings[current] = round(now - began, 2)
        step, began, current = step + 1, now, label
        if progress:
            progress(f"segments: {label}", step, 7)

    prep = Preparation.for_catalog(
        features, catalog, scaling=cfg.scaling, clip=cfg.clip, pca=cfg.pca, seed=cfg.seed
    ).fit(F)
    Z = prep.transform(F)
    summary: dict[str, Any] = {
        "method": method,
        "customers": len(frame),
        "clustered": n,
        "seconds": timings,
    }
    tick("choosing k")
    if method in CHOOSES_K and fixed is None:
        top = min(cfg.k_range[1], n // 10)
        ks = list(range(cfg.k_range[0], top + 1))
        scores = evaluate(Z, ks, seed=cfg.seed, sample=cfg.sample, mixtures=method == "gmm")
        choice = choose(scores, min_share=cfg.min_share, by="bic" if method == "gmm" else "vote")
        k: int | None = choice.k
        summary["selection"] = scores.to_dict(orient="records")
        summary["elbow"] = elbow(list(scores.k), list(scores.inertia))
        summary["reason"] = choice.reason
    else:
        k = fixed
        summary["reason"] = (
            f"k fixed at {fixed} in the configuration"
            if method in CHOOSES_K
            else f"{method} finds the number of dense regions itself"
        )
    tick("clustering")
    clusterer = Clusterer(
        method, k, seed=cfg.seed, sample=cfg.sample, min_share=cfg.min_share, eps=cfg.eps
    )
    raw = clusterer.fit(Z)
    mapping, merges = merge_small(Z, raw, cfg.min_share)
    labels = mapping[raw]
    summary["explained_variance"] = prep.explained_variance()
    summary["clipped"] = prep.clipped_share(F)

    tick("naming")
    scaled = prep.scaled(F)
    clusters = int(labels.max()) + 1
    ids = np.array([f"S{c + 1}" for c in range(clusters)], dtype=object)[labels]
    names = persona_names(
        F,
        pd.Series(ids),
        [f"S{i + 1}" for i in range(clusters)],
        distinguishing(scaled, ids, features),
    )
    if cfg.merge:
        labels, mapping, names = _manual_merges(cfg.merge, labels, mapping, names, merges)
    k_final = int(labels.max()) + 1
    ids = np.array([f"S{c + 1}" for c in range(k_final)], dtype=object)[labels]
    order = [f"S{i + 1}" for i in range(k_final)]
    top = distinguishing(scaled, ids, features)
    summary["k"] = k_final
    summary["merges"] = merges
    names[NO_PURCHASE_ID] = "No Purchase Yet"
    names[EARLY_ID] = early_name(cfg.min_purchases)
    automatic = dict(names)
    names = {s: cfg.names.get(n, n) for s, n in names.items()}
    summary["overrides"] = [
        {"segment_id": s, "automatic": automatic[s], "name": names[s]}
        for s in names
        if names[s] != automatic[s]
    ]
    if len(set(names.values())) < len(names):
        raise StageError(
            "segments: the names in segments.names make two segments share a name: "
            + ", ".join(sorted(n for n in names.values() if list(names.values()).count(n) > 1))
        )

    tick("surrogate tree")
    tree, tree_features, surrogate = _surrogate(F, ids, cfg, features)
    model = SegmentModel(
        method,
        features,
        cfg.min_purchases,
        version,
        as_of,
        preparation=prep,
        clusterer=clusterer,
        mapping=mapping,
        names=names,
        tree=tree,
        tree_features=tree_features,
    )
    summary["surrogate"] = surrogate
    summary["rules"] = model.to_text()
    summary["sql"] = model.to_sql()

    tick("validating")
    summary["distinctness"] = distinctness(F, labels, features, seed=cfg.seed).to_dict(
        orient="records"
    )
    sample = np.arange(n)
    if n > cfg.sample:
        sample = np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.sample, replace=False))
    final_k = summary["k"]

    def refit(rows: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
        c = Clusterer(
            method,
            final_k if method in CHOOSES_K else None,
            seed=seed,
            sample=cfg.sample,
            min_share=cfg.min_share,
            eps=clusterer.eps,
        )
        c.fit(rows)
        return c.predict

    if cfg.bootstrap:
        summary["bootstrap"] = bootstrap_stability(
            Z[sample], labels[sample], refit, rounds=cfg.bootstrap, seed=cfg.seed
        )
        summary["bootstrap"]["jaccard"] = {
            f"S{s + 1}": v for s, v in summary["bootstrap"]["jaccard"].items()
        }
        summary["bootstrap"]["rows"] = len(sample)

    tick("profiles")
    assignments = model.assign(frame)
    prof = profiles(frame, assignments.segment_id, features)
    summary["profiles"] = _profile_records(prof, names, {str(s): v for s, v in top.items()})
    pick = np.random.default_rng(cfg.seed).permutation(sample)[:PROJECTION_ROWS]
    two = PCA(2, random_state=cfg.seed).fit(Z[sample]).transform(Z[pick])
    summary["projection"] = {
        "x": [round(float(v), 3) for v in two[:, 0]],
        "y": [round(float(v), 3) for v in two[:, 1]],
        "segment": [names[s] for s in ids[pick]],
    }
    tick("done")
    summary["snake"] = {
        "features": features,
        "means": {names[s]: [round(float(v), 3) for v in scaled[ids == s].mean(0)] for s in order},
    }
    return Fitted(model, assignments, summary, data_hash(frame, features))
