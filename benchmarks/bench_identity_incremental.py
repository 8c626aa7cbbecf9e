"""Incremental identity resolution: N new profiles against a resolved base.

    python benchmarks/bench_identity_incremental.py                  # 10,000 new vs ~1,000,000
    python benchmarks/bench_identity_incremental.py --profiles 200000 --new 2000

The simulator's hard default setting. ``--new`` profiles, drawn at random from the three
profile files, are held back; the rest are ingested and resolved (a full first run).
Then the held-back profiles are added and ingested, and the next `custintel identity
resolve` (incremental: only the new profiles are linked, with the saved model) is timed.
For comparison the same records are then resolved again with `--full`.

Each resolve runs in a fresh process; wall time from the parent, peak memory as the
child's maximum resident set size (see bench_identity.py). Pairwise precision, recall
and F1 against the truth after each run, and how many ids the full rebuild changed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from bench_identity import PROFILES_PER_PERSON, measure, pairwise

OUT = Path(__file__).resolve().parent / "out" / "identity_incremental"


def customer_map(project: Path) -> pd.DataFrame:
    con = duckdb.connect(str(project / "custintel.duckdb"), read_only=True)
    cmap = con.execute(
        "SELECT source || ':' || source_id AS unique_id, customer_id AS cluster "
        "FROM identity.customer_map"
    ).df()
    con.close()
    return cmap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from custintel.core.config import ProjectConfig
    from custintel.pipeline.project import init_project
    from custintel.simulate.writer import PROFILES, simulation_sources

    shutil.rmtree(OUT, ignore_errors=True)
    data, project = OUT / "data", OUT / "shop"
    cli = [sys.executable, "-m", "custintel.cli"]
    people = int(args.profiles / PROFILES_PER_PERSON)
    subprocess.run(
        [
            *cli,
            "simulate",
            "--customers",
            str(people),
            "--seed",
            str(args.seed),
            "--out",
            str(data),
        ],
        check=True,
        capture_output=True,
    )
    files = {folder: data / folder / "customers.csv" for folder, _ in PROFILES.values()}
    full = {folder: pd.read_csv(path, dtype=str) for folder, path in files.items()}
    total = sum(len(f) for f in full.values())
    rng = np.random.default_rng(args.seed)
    held = rng.permutation(total) < args.new
    start = 0
    for folder, frame in full.items():
        frame[~held[start : start + len(frame)]].to_csv(files[folder], index=False)
        start += len(frame)
    sources = {k: v for k, v in simulation_sources("../data").items() if v.contract == "customers"}
    init_project(project, ProjectConfig(name="bench", sources=sources))

    def ingest() -> None:
        subprocess.run(
            [*cli, "ingest", "--project", str(project), "--json"], check=True, capture_output=True
        )

    truth = pd.read_parquet(data / "truth" / "records.parquet")
    truth["unique_id"] = truth.system + ":" + truth.source_id
    truth = truth[["unique_id", "person_id"]]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}; {total:,} profiles of {people:,} people, "
        f"{int(held.sum()):,} held back",
        flush=True,
    )
    resolve = [*cli, "identity", "resolve", "--project", str(project), "--json"]
    ids = {}
    for step, extra in (("first run", []), ("incremental", []), ("full rebuild", ["--full"])):
        if step == "incremental":
            for folder, frame in full.items():
                frame.to_csv(files[folder], index=False)
        if step != "full rebuild":
            ingest()
        seconds, peak, out = measure(resolve + extra)
        summary = json.loads(out)
        cmap = customer_map(project)
        ids[step] = cmap.set_index("unique_id").cluster
        row = {
            "step": step,
            "seconds": round(seconds, 1),
            "peak_rss_gb": round(peak, 2),
            **pairwise(cmap.merge(truth, on="unique_id")),
            **{k: summary[k] for k in ("mode", "records", "delta_records", "reclustered_records")},
            **{k: summary[k] for k in ("customers", "created", "merged", "split")},
        }
        if step == "full rebuild":
            before = ids["incremental"]
            row["ids_changed_by_rebuild"] = int((before != ids[step].reindex(before.index)).sum())
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
