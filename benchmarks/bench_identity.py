"""Identity resolution on N simulated profiles: custintel vs Splink alone.

    python benchmarks/bench_identity.py                       # about 1,000,000 profiles
    python benchmarks/bench_identity.py --profiles 200000     # a quicker run

The simulator's default (hard) setting: typos, nicknames, swapped names, old e-mails,
moved addresses, national phone formats, missing and swapped birth dates, duplicate
accounts, and households sharing surname, address, landline and sometimes one e-mail.

- **custintel**: `custintel identity resolve` on a project holding the ingested profiles
  (ingest is done first and not timed).
- **Splink alone** (the peer): the raw profile fields with only lower-casing, no
  deterministic pass, straightforward settings (blocking on e-mail, phone, surname with
  birth date, first name with postcode; name, e-mail, phone, birth-date and postcode
  comparisons; u from 10 million random pairs; EM on two rules), clustered at match
  probability 0.95.

Each contender runs in a fresh process; wall time from the parent, peak memory as the
child's maximum resident set size. Pairwise precision, recall and F1 against the truth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent / "out" / "identity"
PROFILES_PER_PERSON = 2.3


def pairwise(labels: pd.DataFrame) -> dict[str, float]:
    """Precision, recall and F1 of predicted clusters (``cluster``) against ``person_id``."""

    def pairs(s: pd.Series) -> int:
        n = s.value_counts()
        return int((n * (n - 1) // 2).sum())

    both = labels.groupby(["cluster", "person_id"]).size()
    tp = int((both * (both - 1) // 2).sum())
    p, r = tp / max(pairs(labels.cluster), 1), tp / max(pairs(labels.person_id), 1)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4)}


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; its wall time, its own peak memory (GB) and its stdout."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        seconds = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        if status:
            raise SystemExit(f"{cmd[:4]} failed: {err.read()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024**2, out.read()


def splink_alone(project: Path, out: Path) -> None:
    """Run inside a child process: Splink with straightforward settings on raw fields."""
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    con = duckdb.connect(str(project / "custintel.duckdb"), read_only=True)
    raw = con.execute(
        "SELECT source || ':' || source_id AS unique_id, lower(first_name) AS first_name, "
        "lower(last_name) AS last_name, lower(email) AS email, phone, "
        "CAST(birth_date AS VARCHAR) AS birth_date, upper(postcode) AS postcode "
        "FROM clean.customers"
    ).df()
    con.close()
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone"),
            block_on("last_name", "birth_date"),
            block_on("first_name", "postcode"),
        ],
        comparisons=[
            cl.NameComparison("first_name"),
            cl.NameComparison("last_name"),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone"),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.PostcodeComparison("postcode"),
        ],
    )
    db = DuckDBAPI(duckdb.connect())
    linker = Linker(db.register(raw), settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("email"), block_on("phone")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("last_name", "birth_date")
    )
    pred = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.95)
    clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]].to_parquet(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--splink-alone", dest="child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        splink_alone(Path(args.child), OUT / "splink_alone.parquet")
        return
    people = int(args.profiles / PROFILES_PER_PERSON)
    shutil.rmtree(OUT, ignore_errors=True)
    project = OUT / "shop"
    cli = [sys.executable, "-m", "custintel.cli"]
    subprocess.run(
        [
            *cli,
            "simulate",
            "--customers",
            str(people),
            "--seed",
            str(args.seed),
            "--out",
            str(OUT / "data"),
        ],
        check=True,
        capture_output=True,
    )
    from custintel.core.config import ProjectConfig
    from custintel.pipeline.project import init_project
    from custintel.simulate.writer import simulation_sources

    sources = {k: v for k, v in simulation_sources("../data").items() if v.contract == "customers"}
    init_project(project, ProjectConfig(name="bench", sources=sources))
    subprocess.run(
        [*cli, "ingest", "--project", str(project), "--json"], check=True, capture_output=True
    )
    truth = pd.read_parquet(OUT / "data" / "truth" / "records.parquet")
    truth["unique_id"] = truth.system + ":" + truth.source_id
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}; {len(truth):,} profiles of {people:,} people"
    )

    seconds, peak, out = measure([*cli, "identity", "resolve", "--project", str(project), "--json"])
    import duckdb

    con = duckdb.connect(str(project / "custintel.duckdb"), read_only=True)
    cmap = con.execute(
        "SELECT source || ':' || source_id AS unique_id, customer_id AS cluster "
        "FROM identity.customer_map"
    ).df()
    con.close()
    quality = pairwise(cmap.merge(truth[["unique_id", "person_id"]], on="unique_id"))
    print(
        json.dumps(
            {
                "contender": "custintel",
                "seconds": round(seconds, 1),
                "peak_rss_gb": round(peak, 2),
                **quality,
                "summary": json.loads(out),
            }
        )
    )

    seconds, peak, _ = measure([sys.executable, __file__, "--splink-alone", str(project)])
    alone = pd.read_parquet(OUT / "splink_alone.parquet").rename(columns={"cluster_id": "cluster"})
    quality = pairwise(alone.merge(truth[["unique_id", "person_id"]], on="unique_id"))
    print(
        json.dumps(
            {
                "contender": "splink alone",
                "seconds": round(seconds, 1),
                "peak_rss_gb": round(peak, 2),
                **quality,
            }
        )
    )


if __name__ == "__main__":
    main()
