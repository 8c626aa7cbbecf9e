"""Segmenting a simulated shop: k from 3 to 10 evaluated and the final fit, timed.

    python benchmarks/bench_segments.py                      # 1,000,000 simulated people
    python benchmarks/bench_segments.py --customers 100000   # a quicker run

Untimed preparation (kept in benchmarks/out/segments/n<N> for later runs): the simulator
writes the shop, then ingest, identity resolution and the feature build as of 2025-06-30.

Timed, each in a fresh process:

- **custintel**: `custintel segment fit --as-of 2025-06-30 --force --json` with the default
  configuration: read the features, choose k among 3..10 (mini-batch k-means from 100,000
  customers, sampled silhouette, Calinski-Harabasz, Davies-Bouldin), the final fit, names,
  surrogate tree, distinctness, 20 bootstrap refits, assignments written, report page.
- **scikit-learn, plainly** (the reference): the same prepared matrix, full-batch
  `KMeans` (n_init=10) for each k from 3 to 10 with the three indices on all customers
  where they are linear and silhouette on 10,000 (full silhouette is quadratic: out of
  reach at a million).

Wall time from the parent, peak memory as the child's own maximum resident set size.
The recovered personas (adjusted Rand index against the simulator's truth among clustered
customers) are reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_identity import measure  # wall time and the child's own peak memory

OUT = Path(__file__).resolve().parent / "out" / "segments"
AS_OF = "2025-06-30"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "custintel.cli", *args]


def prepare(project: Path, customers: int) -> dict[str, float]:
    """Simulate, ingest, resolve and build features once (untimed for the comparison)."""
    if (project / "ready").exists():
        return json.loads((project / "ready").read_text())
    steps: dict[str, float] = {}
    data = project / "data"
    for name, cmd in (
        (
            "simulate",
            cli("simulate", "--customers", str(customers), "--seed", "7", "--out", str(data)),
        ),
        ("init", cli("init", str(project), "--from-simulation", str(data), "--force")),
        ("ingest", cli("ingest", "--project", str(project), "--json")),
        ("identity", cli("identity", "resolve", "--project", str(project), "--json")),
        (
            "features",
            cli("features", "build", "--project", str(project), "--as-of", AS_OF, "--json"),
        ),
    ):
        seconds, _, _ = measure(cmd)
        steps[name] = round(seconds, 1)
        print(f"  {name}: {seconds:.1f} s", flush=True)
    (project / "ready").write_text(json.dumps(steps))
    return steps


def plain_sklearn(project: Path) -> None:
    """The reference, inside a child process."""
    import duckdb
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    from custintel.core.config import SegmentsConfig
    from custintel.segments.prepare import Preparation

    cfg = SegmentsConfig()
    con = duckdb.connect(str(project / "custintel.duckdb"), read_only=True)
    frame = con.execute(
        f"SELECT * FROM features.customer WHERE purchase_count >= {cfg.min_purchases}"
    ).df()
    catalog = con.execute("SELECT name, kind FROM features.catalog").df()
    Z = Preparation.for_catalog(cfg.features, catalog).fit(frame).transform(frame)
    idx = np.random.default_rng(0).choice(len(Z), min(len(Z), 10_000), replace=False)
    scores = []
    for k in range(3, 11):
        labels = KMeans(k, n_init=10, random_state=0).fit_predict(Z)
        scores.append(
            (
                k,
                float(silhouette_score(Z[idx], labels[idx])),
                float(calinski_harabasz_score(Z, labels)),
                float(davies_bouldin_score(Z, labels)),
            )
        )
    print(json.dumps({"rows": len(Z), "scores": scores}))


def recovered(project: Path, version: int) -> dict[str, float]:
    """Adjusted Rand index of the clustered segments against the planted personas."""
    import duckdb
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    con = duckdb.connect(str(project / "custintel.duckdb"), read_only=True)
    a = con.execute(
        "SELECT customer_id, segment_id FROM segments.assignments "
        f"WHERE model_version = {version} AND as_of = DATE '{AS_OF}'"
    ).df()
    cmap = con.execute("SELECT customer_id, source, source_id FROM identity.customer_map").df()
    truth = project / "data" / "truth"
    records = pd.read_parquet(truth / "records.parquet")
    people = pd.read_parquet(truth / "people.parquet", columns=["person_id", "persona"])
    linked = cmap.merge(
        records, left_on=["source", "source_id"], right_on=["system", "source_id"]
    ).merge(people, on="person_id")
    counts = linked.groupby(["customer_id", "persona"]).size().reset_index(name="n")
    persona = counts.sort_values("n").drop_duplicates("customer_id", keep="last")
    clustered = a[a.segment_id.str.startswith("S")].merge(persona, on="customer_id")
    return {
        "ari": float(adjusted_rand_score(clustered.persona, clustered.segment_id)),
        "clustered_share": len(clustered) / len(a),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--child", choices=["sklearn"])
    parser.add_argument("--project")
    args = parser.parse_args()
    if args.child:
        plain_sklearn(Path(args.project))
        return
    project = OUT / f"n{args.customers}"
    print(f"preparing {args.customers:,} simulated people in {project}", flush=True)
    steps = prepare(project, args.customers)
    seconds, gb, out = measure(
        cli("segment", "fit", "--project", str(project), "--as-of", AS_OF, "--force", "--json")
    )
    fit = json.loads(out[out.index("{") :])
    result = {
        "customers": fit["customers"],
        "clustered": fit["clustered"],
        "k": fit["k"],
        "reason": fit["reason"],
        "metrics": fit["metrics"],
        "custintel_s": round(seconds, 1),
        "custintel_gb": round(gb, 2),
        "custintel_phases_s": fit.get("seconds"),
        **recovered(project, fit["version"]),
        "preparation_s": steps,
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
    }
    print(f"custintel segment fit: {seconds:.1f} s, {gb:.2f} GB, k={fit['k']}", flush=True)
    if args.reference:
        cmd = [sys.executable, __file__, "--child", "sklearn", "--project", str(project)]
        ref_s, ref_gb, ref_out = measure(cmd)
        ref = json.loads(ref_out)
        best = max(ref["scores"], key=lambda s: s[1])
        result |= {
            "sklearn_s": round(ref_s, 1),
            "sklearn_gb": round(ref_gb, 2),
            "sklearn_best_silhouette_k": best[0],
            "ratio": round(ref_s / seconds, 2),
        }
        print(f"plain scikit-learn k 3..10: {ref_s:.1f} s, {ref_gb:.2f} GB", flush=True)
    (OUT / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
