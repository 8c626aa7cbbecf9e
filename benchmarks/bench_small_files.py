"""Ingest a folder of many small CSV files: the fixed cost of one load.

    python benchmarks/bench_small_files.py               # 40 files of 20 rows
    python benchmarks/bench_small_files.py --files 200

Every other file has a stray quote on its last line (read record by record); each file
is one load with its own transaction, rules, duplicate check and reconciliation.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from custintel.core.config import ProjectConfig, SourceConfig
from custintel.pipeline.project import Project, init_project

HEADER = "order_id,customer_ref,order_ts,amount,currency\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        (project / "data").mkdir(parents=True)
        config = ProjectConfig(
            sources={"orders": SourceConfig(contract="orders", path="data/*.csv")}
        )
        init_project(project, config)
        for i in range(args.files):
            rows = "".join(f"O{i}_{j},C{j},2025-01-01,10.50,EUR\n" for j in range(args.rows))
            broken = f'O{i}_x,"C,2025-01-01,1.00,EUR\n' if i % 2 else ""
            (project / "data" / f"f{i:04d}.csv").write_text(HEADER + rows + broken)
        started = time.perf_counter()
        with Project.open(project) as p:
            summary = p.ingest().as_dict()
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "files": args.files,
                "rows_in": summary["rows_in"],
                "files_loaded": summary["files_loaded"],
                "seconds": round(seconds, 2),
                "seconds_per_file": round(seconds / args.files, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
