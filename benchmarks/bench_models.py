"""Propensity models at a million customers: training, batch scoring, single-row latency.

    python benchmarks/bench_models.py                      # 1,000,000 simulated people
    python benchmarks/bench_models.py --customers 100000   # a quicker run

Reuses the simulated shop of benchmarks/bench_segments.py (prepared there when missing:
simulate, ingest, identity, features as of 2025-06-30), then, untimed, the training table
of churn_90d over 2024-09-30, 2024-12-31 and 2025-03-31. Timed, each in a fresh process:

- **LightGBM alone** on 1,000,000 rows of the training table (every feature, about 85),
  default settings of custintel, early stopping on 250,000 other rows; no tuning.
- **custintel model train churn_90d**: both learners, calibration, the out-of-time
  evaluation, importance and registration.
- **custintel score churn_90d --as-of 2025-06-30**: features read, every customer scored
  with decile, tier and three reasons, `scores.churn_90d` written.
- **single-row latency**, native against ONNX Runtime (p50, p99 over 2,000 calls, one
  customer each): from a row of `features.customer` to the score, and inference alone.

Wall time from the parent, peak memory as the child's own maximum resident set size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_identity import measure  # wall time and the child's own peak memory
from bench_segments import OUT, cli, prepare

SNAPSHOTS = "2024-09-30,2024-12-31,2025-03-31"


def lightgbm_alone(project: Path, rows: int) -> None:
    """In a child: LightGBM with custintel's defaults on ``rows`` training rows."""
    import duckdb
    import numpy as np

    from custintel.models.algorithms import fit
    from custintel.models.dataset import prepare as prepare_rows

    con = duckdb.connect(str(project / "custintel.duckdb"), read_only=True)
    frame = con.execute(
        f"SELECT * FROM features.train_churn_90d USING SAMPLE {rows * 5 // 4} ROWS (reservoir, 7)"
    ).df()
    ds = prepare_rows(frame, time=None)
    rows = min(rows, int(0.8 * len(ds.y)))
    began = time.perf_counter()
    model = fit(
        "lightgbm",
        ds.X.iloc[:rows],
        ds.y[:rows],
        ds.X.iloc[rows:],
        ds.y[rows:],
        params={},
        seed=0,
    )
    seconds = time.perf_counter() - began
    print(
        json.dumps(
            {
                "rows": rows,
                "features": ds.X.shape[1],
                "fit_s": round(seconds, 1),
                "trees": int(model.best_iteration_ or model.n_estimators),
                "positive_rate": float(np.mean(ds.y)),
            }
        )
    )


def latency(project: Path, calls: int) -> None:
    """In a child: one customer per call through the registered model."""
    import numpy as np

    from custintel.core import registry
    from custintel.pipeline.project import Project

    with Project.open(project) as p:
        entry = registry.get(p.warehouse, "churn_90d", alias="champion")
        model = registry.load(p.artifacts_dir, entry)
        frame = p.warehouse.sql(
            "SELECT * FROM features.customer USING SAMPLE 2000 ROWS (reservoir, 3)"
        ).df()
    from custintel.models import onnx
    from custintel.models.dataset import feature_frame

    graph = entry.folder(p.artifacts_dir) / "model.onnx"
    session = onnx.session(graph.read_bytes())
    rows = [frame.iloc[[i % len(frame)]] for i in range(calls)]
    ready = [feature_frame(r, model.features, model.categories) for r in rows]
    encoded = [onnx.encode(x) for x in ready]
    ways = {
        # from a row of features.customer to the score
        "native": lambda i: model.predict_frame(rows[i]),
        "onnx": lambda i: onnx.predict(
            session, feature_frame(rows[i], model.features, model.categories)
        ),
        # inference alone, on a row already typed (native) or encoded (ONNX)
        "native_inference": lambda i: model.predict(ready[i]),
        "onnx_inference": lambda i: session.run([onnx.OUTPUT], {onnx.INPUT: encoded[i]}),
    }
    out = {}
    for name, call in ways.items():
        times = []
        for i in range(calls):
            began = time.perf_counter()
            call(i)
            times.append(time.perf_counter() - began)
        ms = np.array(times[20:]) * 1000  # the first calls warm caches
        out[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
        }
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["lightgbm", "latency"])
    parser.add_argument("--project")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.child == "lightgbm":
        lightgbm_alone(Path(args.project), args.rows)
        return
    if args.child == "latency":
        latency(Path(args.project), 2000)
        return
    project = OUT / f"n{args.customers}"
    print(f"preparing {args.customers:,} simulated people in {project}", flush=True)
    prepare(project, args.customers)
    import duckdb

    con = duckdb.connect(str(project / "custintel.duckdb"), read_only=True)
    have = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'features'"
        ).fetchall()
    }
    con.close()
    if "train_churn_90d" not in have:
        seconds, _, _ = measure(
            cli(
                "features",
                "training-set",
                "--project",
                str(project),
                "--label",
                "churn_90d",
                "--snapshots",
                SNAPSHOTS,
                "--json",
            )
        )
        print(f"  training table: {seconds:.1f} s", flush=True)
    result: dict[str, object] = {"customers": args.customers}
    rows = args.rows
    s, gb, out = measure(
        [
            sys.executable,
            __file__,
            "--child",
            "lightgbm",
            "--project",
            str(project),
            "--rows",
            str(rows),
        ]
    )
    result["lightgbm_alone"] = {**json.loads(out), "wall_s": round(s, 1), "peak_gb": round(gb, 2)}
    print(f"LightGBM alone: {result['lightgbm_alone']}", flush=True)
    s, gb, out = measure(
        cli("model", "train", "churn_90d", "--project", str(project), "--force", "--json")
    )
    trained = json.loads(out[out.index("{") :])
    result["model_train"] = {
        "wall_s": round(s, 1),
        "peak_gb": round(gb, 2),
        "version": trained["version"],
        "rows": trained["rows"],
        "test": trained["test"],
        "algorithm": trained["algorithm"],
    }
    print(f"model train: {s:.1f} s, {gb:.2f} GB", flush=True)
    measure(
        cli(
            "model",
            "promote",
            "churn_90d",
            "--project",
            str(project),
            "--version",
            str(trained["version"]),
            "--json",
        )
    )
    s, gb, out = measure(
        cli("score", "churn_90d", "--project", str(project), "--as-of", "2025-06-30", "--json")
    )
    scored = json.loads(out[out.index("{") :])
    result["score"] = {
        "wall_s": round(s, 1),
        "peak_gb": round(gb, 2),
        "customers": scored["customers"],
    }
    print(f"score: {s:.1f} s, {gb:.2f} GB, {scored['customers']:,} customers", flush=True)
    _, _, out = measure([sys.executable, __file__, "--child", "latency", "--project", str(project)])
    result["latency"] = json.loads(out)
    result["machine"] = (
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    )
    (OUT / "models_result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
