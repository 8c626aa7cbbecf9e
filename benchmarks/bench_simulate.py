"""Time and peak memory of ``custintel simulate`` for a given number of people.

    python benchmarks/bench_simulate.py                      # 50,000 and 1,000,000 people
    python benchmarks/bench_simulate.py --customers 200000   # one size

Each size runs in its own fresh process (the real CLI); wall time comes from the parent
and peak memory from the child's rusage (max RSS). Targets: 50,000 people in 10 s or less,
1,000,000 people (about 2.3 million profiles and 20+ million orders) in 3 minutes or less
and 8 GB or less.
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

OUT = Path(__file__).resolve().parent / "out"


def run(customers: int, seed: int) -> dict[str, object]:
    out = OUT / f"simulate_{customers}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "custintel.cli", "simulate", "--customers", str(customers)]
    cmd += ["--seed", str(seed), "--out", str(out), "--json"]
    began = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = child.communicate()  # read the pipes before reaping the child
    seconds = time.perf_counter() - began
    if child.returncode:
        raise SystemExit(f"simulate failed: {stderr}")
    summary = json.loads(stdout)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out, ignore_errors=True)
    return {"customers": customers, "seconds": round(seconds, 1), "bytes_written": size, **summary}


def peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, action="append")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = args.customers or [50_000, 1_000_000]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    for customers in sizes:
        # Children are measured one at a time in their own interpreter, so RUSAGE_CHILDREN's
        # running maximum after each is that size's peak as long as sizes grow.
        result = run(customers, args.seed)
        result["peak_rss_gb"] = round(peak_rss_gb(), 2)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
