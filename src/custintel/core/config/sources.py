"""Where data comes from and goes: the warehouse, ingest settings, quality rules and each
source's mapping onto a contract."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    field_validator,
)

from custintel.core.config.base import Strict


class SparkConfig(Strict):
    """Spark settings for ``spark://`` warehouses (docs/architecture.md#spark)."""

    shuffle_partitions: int = Field(
        default=4, ge=1, description="spark.sql.shuffle.partitions (raise it on a cluster)"
    )
    conf: dict[str, str] = Field(
        default_factory=dict, description="any other Spark settings, passed as they are"
    )
    metastore: Literal["project", "cluster"] = Field(
        default="project",
        description="project: a Derby metastore and table folder inside the project; "
        "cluster: the cluster's own (hive-site.xml, spark.sql.warehouse.dir in conf)",
    )
    staging_uri: str | None = Field(
        default=None,
        description="folder every executor can read (a shared mount) where ingest stages "
        "parsed files as Parquet; unset: the project folder in local mode, else (or with "
        "'driver') rows go through the driver",
    )


class WarehouseConfig(Strict):
    """Where tables live.

    ``duckdb://custintel.duckdb`` is a DuckDB file relative to the project folder;
    ``duckdb:///abs/path.duckdb`` an absolute one; ``duckdb://:memory:`` in memory;
    ``spark://local[2]`` Spark in local mode; ``spark://host:7077`` a Spark master; any
    other URL goes to ``ibis.connect``.
    """

    url: str = "duckdb://custintel.duckdb"
    threads: int | None = Field(default=None, ge=1, description="DuckDB worker threads")
    memory_limit: str | None = Field(default=None, description="DuckDB memory limit, e.g. '3GB'")
    lock_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="how long to wait for a DuckDB file another process holds (docs/architecture.md#readers)",
    )
    spark: SparkConfig = Field(default_factory=lambda: SparkConfig())


class CsvOptions(Strict):
    """How to read a delimited text file (DuckDB's CSV reader does the parsing)."""

    delimiter: str = Field(
        default=",",
        description='one character, or "whitespace": fields separated by any run of spaces '
        "or tabs, leading and trailing blanks ignored (fixed-width style exports)",
    )
    quote: str = '"'
    escape: str = '"'
    header: bool = True
    column_names: list[str] | None = Field(
        default=None,
        description="names of the columns of a file without a header (default column0, "
        "column1, ...)",
    )
    encoding: Literal["utf-8", "utf-16", "latin-1"] = "utf-8"
    skip_rows: int = Field(default=0, ge=0, description="lines to skip before the header")
    null_values: list[str] = Field(default_factory=lambda: [""])
    compression: Literal["auto", "none", "gzip", "zstd"] = "auto"
    strict: bool = Field(
        default=True,
        description="strict CSV: ragged rows and stray quotes are quarantined; false reads "
        "files with mixed line endings but silently drops surplus fields",
    )

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if len(value) > 1 and value != "whitespace":
            raise ValueError(f'must be a single character or "whitespace", got {value!r}')
        return value

    @field_validator("quote", "escape")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) > 1:
            raise ValueError(f"must be a single character, got {value!r}")
        return value

    @field_validator("column_names")
    @classmethod
    def _distinct_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (len(set(value)) != len(value) or not all(value)):
            raise ValueError("column names must be non-empty and distinct")
        return value


DeletedFiles = Literal["keep", "remove"]


class IngestConfig(Strict):
    """How ``custintel ingest`` (and the ingest stage of ``custintel run``) treats the
    inputs it finds, or no longer finds (docs/ingest.md)."""

    strict: bool = Field(
        default=False,
        description="a source whose path matches no input fails the run instead of warning",
    )
    deleted_files: DeletedFiles = Field(
        default="keep",
        description="rows of a loaded file that has since disappeared: keep them (reported "
        "every run) or remove them",
    )


class SqlSource(Strict):
    """A table or query in a SQL database, read in batches through Python's DB-API."""

    url: str = Field(description="sqlite:///path/to/file.db (relative to the project)")
    table: str | None = None
    query: str | None = None
    batch_rows: int = Field(default=50_000, ge=1)

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith("sqlite:///"):
            raise ValueError("only sqlite:///<path> URLs are supported so far")
        return value

    def statement(self) -> str:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self.query or f'SELECT * FROM "{self.table}"'


class QualityConfig(Strict):
    """Thresholds for the default quality rules (each source can override them)."""

    max_amount: float = Field(default=100_000.0, gt=0, description="largest plausible amount")
    future_tolerance_hours: float = Field(
        default=24.0, ge=0, description="how far in the future a timestamp may lie"
    )
    earliest_timestamp: str = Field(
        default="1990-01-01", description="timestamps before this date are implausible"
    )

    @field_validator("earliest_timestamp")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"expected a date like 1990-01-01 (or a date and time), got {value!r}"
            ) from None
        return value

    allowed_values: dict[str, list[str]] = Field(
        default_factory=dict, description="column -> allowed values, replacing the contract's"
    )


class SourceConfig(Strict):
    """One input: files (a path or glob) or a SQL table/query, mapped onto a contract."""

    contract: Literal[
        "customers",
        "orders",
        "web_events",
        "email_events",
        "support_tickets",
        "consents",
        "contacts",
    ]
    system: str | None = Field(
        default=None, description="source system name stored in `source` (default: the key)"
    )
    path: str | None = Field(default=None, description="file or glob, relative to the project")
    format: Literal["csv", "parquet", "jsonl"] | None = None
    csv: CsvOptions = Field(default_factory=CsvOptions)
    sql: SqlSource | None = None
    columns: dict[str, str] = Field(
        default_factory=dict, description="contract column -> source column"
    )
    constants: dict[str, str] = Field(
        default_factory=dict, description="contract column -> a fixed value for every row"
    )
    timestamp_format: str | None = Field(
        default=None, description="strptime format, e.g. %d/%m/%Y %H:%M"
    )
    date_format: str | None = Field(default=None, description="strptime format for dates")
    timezone: str = Field(default="UTC", description="zone of timestamps without an offset")
    currency: str | None = Field(default=None, description="currency when the source has none")
    quality: QualityConfig | None = None
    deleted_files: DeletedFiles | None = Field(
        default=None, description="keep or remove the rows of a vanished file (default: ingest's)"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)"
            ) from None
        return value

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 3 or not value.isalpha()):
            raise ValueError(f"expected a 3-letter ISO 4217 code, got {value!r}")
        return value.upper() if value else value

    def check_shape(self) -> None:
        if (self.path is None) == (self.sql is None):
            raise ValueError("give exactly one of 'path' or 'sql'")
        if self.sql is not None:
            self.sql.statement()
