"""Identity resolution on outside profiles: custintel vs Splink alone, per schema variant.

    python benchmarks/bench_identity_outside.py                      # 20,000 people
    python benchmarks/bench_identity_outside.py --people 100000 --variants id_only

The profiles come from tests/outside/profiles.py, a generator written apart from the
simulator (US register: nicknames, keyboard typos, moves, missing and invalid birth
dates, SSNs with slipped digits, households of couples, families, twins and room-mates).
Variants: full, no_email, no_email_no_phone, id_only (names, street, birth date, SSN),
two_sources (two deduplicated systems, custintel in link-only mode).

- **custintel**: `custintel ingest` (not timed) then `custintel identity resolve` with
  the default settings except `default_region: US` (and `link_only` for two_sources).
- **Splink alone** (the peer), set up by hand for the same fields: lower-cased names,
  digits-only SSN and phone, ISO birth dates; comparisons for every field the variant
  has (names and address by Jaro-Winkler, SSN exact/one edit, birth date, zip, phone,
  e-mail); blocking on SSN, e-mail, phone, birth date + zip, birth date + surname,
  surname + zip; u from 10 million random pairs; EM on birth date + zip and on SSN;
  clustered at match probability 0.95.

Each contender runs in a fresh process; pairwise precision, recall, F1 against the
truth (every record counted), the share of household member pairs merged, wall time.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.outside import identity_run, profiles  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "identity_outside"


def splink_alone(folder: Path, out: Path) -> None:
    """Run inside a child process: Splink set up by hand for the variant's raw fields."""
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    frames = []
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path, dtype=str)
        frame["unique_id"] = path.stem + ":" + frame["cust_no"]
        frames.append(frame)
    raw = pd.concat(frames, ignore_index=True)
    cols = set(raw.columns)
    data = pd.DataFrame({"unique_id": raw["unique_id"]})
    data["first_name"] = raw["given_name"].str.lower()
    data["last_name"] = raw["surname"].str.lower()
    dob = pd.to_datetime(raw["dob"], format="%m/%d/%Y", errors="coerce")
    data["dob"] = dob.dt.strftime("%Y-%m-%d")
    data["ssn"] = raw["ssn"].str.replace(r"\D", "", regex=True)
    data["street"] = raw["street"].str.lower()
    comparisons = [
        cl.JaroWinklerAtThresholds("first_name", [0.9]),
        cl.JaroWinklerAtThresholds("last_name", [0.9]),
        cl.DateOfBirthComparison("dob", input_is_string=True),
        cl.LevenshteinAtThresholds("ssn", [1]),
        cl.JaroWinklerAtThresholds("street", [0.9]),
    ]
    blocking = [block_on("ssn"), block_on("dob", "last_name")]
    if "zip" in cols:
        data["zip"] = raw["zip"]
        comparisons.append(cl.ExactMatch("zip"))
        blocking += [block_on("dob", "zip"), block_on("last_name", "zip")]
    if "phone_number" in cols:
        data["phone"] = raw["phone_number"].str.replace(r"\D", "", regex=True).str[-10:]
        comparisons.append(cl.ExactMatch("phone"))
        blocking.append(block_on("phone"))
    if "email_address" in cols:
        data["email"] = raw["email_address"].str.lower()
        comparisons.append(cl.EmailComparison("email"))
        blocking.append(block_on("email"))
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=blocking,
        comparisons=comparisons,
    )
    linker = Linker(DuckDBAPI(duckdb.connect()).register(data), settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("ssn"), block_on("first_name", "last_name", "dob")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("dob", "zip") if "zip" in cols else block_on("dob", "last_name")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("ssn"))
    pred = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.95)
    clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]].to_parquet(out)


def timed(cmd: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{cmd[:5]} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - began, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--variants", nargs="*", default=list(profiles.VARIANTS))
    parser.add_argument("--splink-alone", dest="child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder = Path(args.child)
        splink_alone(folder / "data", folder / "splink_alone.parquet")
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}; {args.people:,} people, seed {args.seed}"
    )
    population = profiles.people(args.people, seed=args.seed)
    cli = [sys.executable, "-m", "custintel.cli"]
    for variant in args.variants:
        files, truth = profiles.records(population, variant, seed=args.seed)
        root = OUT / variant
        shutil.rmtree(root, ignore_errors=True)
        cfg = identity_run.IdentityConfig(default_region="US", link_only=variant == "two_sources")
        identity_run.write_project(root, files, cfg)
        subprocess.run([*cli, "ingest", "--project", str(root)], check=True, capture_output=True)
        seconds, out = timed([*cli, "identity", "resolve", "--project", str(root), "--json"])
        ours = identity_run.scores(identity_run.customer_map(root), truth)
        summary = json.loads(out)
        print(
            json.dumps(
                {
                    "variant": variant,
                    "contender": "custintel",
                    "records": len(truth),
                    "seconds": round(seconds, 1),
                    **ours,
                    "compared": summary["plan"].get("compared"),
                }
            )
        )
        seconds, _ = timed([sys.executable, __file__, "--splink-alone", str(root)])
        alone = pd.read_parquet(root / "splink_alone.parquet")
        source_id = alone.unique_id.str.split(":", n=1)
        cmap = pd.DataFrame(
            {
                "source": source_id.str[0],
                "source_id": source_id.str[1],
                "customer_id": alone.cluster_id.astype(str),
            }
        )
        theirs = identity_run.scores(cmap, truth)
        print(
            json.dumps(
                {
                    "variant": variant,
                    "contender": "splink alone",
                    "records": len(truth),
                    "seconds": round(seconds, 1),
                    **theirs,
                }
            )
        )


if __name__ == "__main__":
    main()
