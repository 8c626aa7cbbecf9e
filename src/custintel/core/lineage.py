"""Operational tables in the ``ops`` schema: runs, the file registry and lineage.

``ops.lineage`` is append-only and shared by every stage: one row per input a stage read
and output it wrote, with counts, code version and config hash. Later stages append to it
through :func:`record_lineage`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import ibis
import pandas as pd

from custintel import __version__
from custintel.core.warehouse import Warehouse

OPS_TABLES: dict[str, dict[str, str]] = {
    "pipeline_runs": {
        "run_id": "string",
        "stage": "string",
        "status": "string",
        "started_at": "timestamp('UTC')",
        "finished_at": "timestamp('UTC')",
        "message": "string",
        "code_version": "string",
        "config_hash": "string",
    },
    "ingest_runs": {
        "run_id": "string",
        "started_at": "timestamp('UTC')",
        "finished_at": "timestamp('UTC')",
        "status": "string",
        "files_loaded": "int64",
        "files_skipped": "int64",
        "files_failed": "int64",
        "rows_in": "int64",
        "rows_clean": "int64",
        "rows_quarantined": "int64",
        "rows_duplicate": "int64",
        "reconciled": "boolean",
        "message": "string",
        "code_version": "string",
        "config_hash": "string",
        "warnings": "string",
    },
    "ingested_files": {
        "source": "string",
        "file": "string",
        "sha256": "string",
        "size_bytes": "int64",
        "load_id": "string",
        "run_id": "string",
        "loaded_at": "timestamp('UTC')",
        "rows_in": "int64",
        "rows_clean": "int64",
        "rows_quarantined": "int64",
        "rows_duplicate": "int64",
        "rule_counts": "string",
        "field_counts": "string",
        "extra_columns": "string",
        "depends_on": "string",
    },
    "projections": {
        "table_name": "string",
        "as_of": "string",
        "last_data_day": "string",
        "run_id": "string",
        "recorded_at": "timestamp('UTC')",
    },
    "lineage": {
        "run_id": "string",
        "stage": "string",
        "source": "string",
        "input": "string",
        "input_hash": "string",
        "output": "string",
        "rows_in": "int64",
        "rows_out": "int64",
        "rows_quarantined": "int64",
        "rows_duplicate": "int64",
        "rule_counts": "string",
        "code_version": "string",
        "config_hash": "string",
        "started_at": "timestamp('UTC')",
        "finished_at": "timestamp('UTC')",
    },
}


def now() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    """Sortable, unique: UTC time to the second plus a random suffix."""
    return f"{now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


SQL_TYPES = {"string": ("VARCHAR", "STRING"), "int64": ("BIGINT", "BIGINT")}
"""Column types a newer version may add to an ops table: (DuckDB, Spark) spelling."""


def ensure_ops_tables(wh: Warehouse) -> None:
    """Create the ops tables, and add columns a newer version knows to older ones."""
    for name, columns in OPS_TABLES.items():
        if not wh.exists("ops", name):
            wh.con.create_table(name, schema=ibis.schema(columns), database="ops")
            continue
        have = set(wh.table("ops", name).columns)
        for col, kind in columns.items():
            if col not in have and kind in SQL_TYPES:
                duck, spark = SQL_TYPES[kind]
                target = wh.qualified("ops", name)
                if wh.kind == "spark":
                    wh.sql(f"ALTER TABLE {target} ADD COLUMNS (`{col}` {spark})")
                else:
                    wh.sql(f'ALTER TABLE {target} ADD COLUMN "{col}" {duck}')


def ops_ready(wh: Warehouse) -> bool:
    """Whether every ops table exists with every column (read-only commands check this
    instead of creating them)."""
    for name, columns in OPS_TABLES.items():
        if not wh.exists("ops", name) or set(columns) - set(wh.table("ops", name).columns):
            return False
    return True


def _frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    schema = ibis.schema(OPS_TABLES[name])
    frame = pd.DataFrame(rows, columns=list(schema.names))
    for col, dtype in schema.items():
        if dtype.is_timestamp():
            frame[col] = pd.to_datetime(frame[col], utc=True)
        elif dtype.is_integer():
            frame[col] = frame[col].astype("int64")
        elif dtype.is_boolean():
            frame[col] = frame[col].astype("bool")
        else:
            frame[col] = frame[col].astype("object")
    return frame


def append_ops(wh: Warehouse, name: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        wh.con.insert(name, _frame(name, rows), database="ops")


def record_lineage(
    wh: Warehouse,
    *,
    run_id: str,
    stage: str,
    source: str,
    input: str,
    output: str,
    config_hash: str,
    started_at: datetime,
    input_hash: str = "",
    rows_in: int = 0,
    rows_out: int = 0,
    rows_quarantined: int = 0,
    rows_duplicate: int = 0,
    rule_counts: dict[str, int] | None = None,
) -> None:
    append_ops(
        wh,
        "lineage",
        [
            {
                "run_id": run_id,
                "stage": stage,
                "source": source,
                "input": input,
                "input_hash": input_hash,
                "output": output,
                "rows_in": rows_in,
                "rows_out": rows_out,
                "rows_quarantined": rows_quarantined,
                "rows_duplicate": rows_duplicate,
                "rule_counts": json.dumps(rule_counts or {}, sort_keys=True),
                "code_version": __version__,
                "config_hash": config_hash,
                "started_at": started_at,
                "finished_at": now(),
            }
        ],
    )
