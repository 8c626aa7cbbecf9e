"""The project configuration, ``custintel.yaml``, validated with pydantic.

Every model forbids unknown keys, so a typo fails when the file is loaded, and the error
names the YAML path, the line, what was expected and what came.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from custintel.core.contracts import get_contract
from custintel.core.errors import ConfigError

CONFIG_FILE = "custintel.yaml"
M = TypeVar("M", bound=BaseModel)

STAGES = ("ingest", "identity", "features", "segments", "models", "clv")
"""Every stage custintel knows, in the order ``custintel run`` executes them."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WarehouseConfig(_Strict):
    """Where tables live.

    ``duckdb://custintel.duckdb`` is a DuckDB file relative to the project folder;
    ``duckdb:///abs/path.duckdb`` an absolute one; ``duckdb://:memory:`` in memory;
    ``spark://local[2]`` Spark in local mode; ``spark://host:7077`` a Spark master; any
    other URL goes to ``ibis.connect``.
    """

    url: str = "duckdb://custintel.duckdb"
    threads: int | None = Field(default=None, ge=1, description="DuckDB worker threads")
    memory_limit: str | None = Field(default=None, description="DuckDB memory limit, e.g. '3GB'")


class CsvOptions(_Strict):
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


class IngestConfig(_Strict):
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


class SqlSource(_Strict):
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


class QualityConfig(_Strict):
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


GoldenAttribute = Literal[
    "first_name", "last_name", "email", "phone", "birth_date", "address", "postcode", "city"
]
"""The attributes of the golden record ``customer.profile``."""


ComparedField = Literal[
    "first_name",
    "last_name",
    "email",
    "phone",
    "national_id",
    "account_number",
    "loyalty_id",
    "birth_date",
    "postcode",
    "address",
    "city",
    "region",
]
BlockingField = Literal[ComparedField, "first_initial"]
"""A blocking or training rule's field: a compared field, or the first name's initial."""


class MatchRule(_Strict):
    """A deterministic rule: records equal on every field (all present) are one customer."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    fields: list[Literal[ComparedField, "email_canonical"]] = Field(min_length=1)
    compatible_first_name: bool = Field(
        default=True,
        description="the household guard: also require first names that may be the same "
        "person (equal, a nickname of each other, swapped with the last name, a likely "
        "typo, or one missing); turn off only for a key no two people ever share",
    )


class IdentityConfig(_Strict):
    """How source records become customers (docs/identity.md)."""

    default_region: str = Field(default="GB", description="phone region for national numbers")
    rules: list[MatchRule] = Field(
        default_factory=lambda: [
            MatchRule(name="email", fields=["email"]),
            MatchRule(name="loyalty_id", fields=["loyalty_id"]),
            MatchRule(name="national_id", fields=["national_id"]),
            MatchRule(name="phone_surname", fields=["phone", "last_name"]),
        ]
    )
    probabilistic: bool = Field(default=True, description="run Splink on top of the rules")
    link_only: bool = Field(
        default=False,
        description="the sources are each already deduplicated: link records of different "
        "sources only, at most one record of each source per customer",
    )
    comparisons: list[ComparedField] | None = Field(
        default=None,
        description="fields Splink compares (default: every field enough profiles hold)",
    )
    blocking_rules: list[list[BlockingField]] | None = Field(
        default=None,
        description="candidate-pair rules, each a list of fields equal on both records "
        "(default: chosen from the fields present and their cardinality)",
    )
    training_rules: list[list[BlockingField]] | None = Field(
        default=None,
        description="rules EM trains m on, in order (default: the blocking rules, strongest "
        "first, until every comparison is estimated)",
    )
    min_fill: float = Field(
        default=0.02, ge=0, le=1, description="fields held by fewer profiles are not compared"
    )
    max_block_pairs: float = Field(
        default=30.0,
        gt=0,
        description="blocking rules making more candidate pairs per profile are left out",
    )
    min_records_probabilistic: int = Field(
        default=1000, ge=2, description="fewer profiles than this: rules only (EM needs pairs)"
    )
    threshold_match_weight: float = Field(
        default=6.0, description="Splink match weight at or above which two records link"
    )
    u_max_pairs: float = Field(default=1e7, gt=0, description="random pairs to estimate u")
    max_key_share: int = Field(
        default=6, ge=2, description="a key value held by more records is shared, not a key"
    )
    max_cluster_size: int = Field(
        default=12, ge=2, description="larger clusters are re-cut with only the strong links"
    )
    strong_match_weight: float = Field(
        default=12.0, description="weight of the links kept when a cluster is re-cut"
    )
    placeholders: list[str] = Field(
        default_factory=lambda: [
            "test@test.com",
            "noemail@noemail.com",
            "none@none.com",
            "no@email.com",
            "example@example.com",
            "0000000000",
            "1234567890",
            "9999999999",
        ],
        description="values never used as keys (besides automatic detection)",
    )
    id_prefix: str = Field(default="CU", pattern=r"^[A-Z]{1,4}$")
    source_priority: list[str] = Field(
        default_factory=list,
        description="systems from most to least trusted, for the golden record",
    )
    survivorship: dict[
        GoldenAttribute, Literal["source_priority", "most_recent", "most_frequent"]
    ] = Field(
        default_factory=lambda: {
            "first_name": "most_frequent",
            "last_name": "most_frequent",
            "email": "most_recent",
            "phone": "most_recent",
            "birth_date": "most_frequent",
        },
        description="rule per golden-record attribute; others use source_priority",
    )


class FeaturesConfig(_Strict):
    """Customer features as of a date, labels and training tables (docs/features.md)."""

    as_of: dt.date | None = Field(
        default=None,
        description="as-of date of `custintel run` (default: the day after the last order)",
    )
    snapshots: list[dt.date] = Field(
        default_factory=list, description="as-of dates of the training tables `run` builds"
    )
    labels: list[str] = Field(
        default_factory=lambda: ["churn_90d", "purchase_90d", "spend_365d", "new_category_90d"],
        description="labels `run` builds training tables for (docs/features.md#labels)",
    )
    windows: list[int] = Field(default_factory=lambda: [7, 30, 90, 180, 365])
    engagement_windows: list[int] = Field(default_factory=lambda: [30, 90, 365])
    half_life_days: int = Field(default=30, ge=1, description="of decayed e-mail rates")
    categories: list[str] | None = Field(
        default=None,
        description="categories with a share feature (default: the most frequent ones)",
    )
    max_categories: int = Field(default=12, ge=0)
    holiday_months: list[int] = Field(default_factory=lambda: [11, 12])
    currency: str | None = Field(
        default=None, description="reporting currency (default: the orders' most common)"
    )
    fx_rates: dict[str, float] = Field(
        default_factory=dict, description="currency -> units of the reporting currency"
    )
    response_window_days: int = Field(default=30, ge=1)
    high_value_spend: float = Field(
        default=500.0, gt=0, description="spend in the horizon that makes high_value_<h>d a 1"
    )
    max_days_after_data: int = Field(
        default=7,
        ge=1,
        description="an as-of date later than this many days after the last event is refused "
        "(unless --projection)",
    )

    @field_validator("windows", "engagement_windows")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if not value or any(w < 1 for w in value):
            raise ValueError("windows must be whole days of at least 1")
        return sorted(set(value))

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: list[str]) -> list[str]:
        pattern = re.compile(r"^(churn|purchase|spend|new_category)_[1-9][0-9]*d$|^response_.+$")
        for name in value:
            if not pattern.match(name):
                raise ValueError(
                    f"unknown label {name!r}: use churn_<days>d, purchase_<days>d, "
                    "spend_<days>d, new_category_<days>d or response_<campaign id>"
                )
        return value

    @field_validator("holiday_months")
    @classmethod
    def _months(cls, value: list[int]) -> list[int]:
        if any(not 1 <= m <= 12 for m in value):
            raise ValueError("months are 1 to 12")
        return value


DEFAULT_SEGMENT_FEATURES = [
    "purchase_count",
    "avg_order_value",
    "days_since_last_purchase",
    "tenure_days",
    "interpurchase_days_mean",
    "discount_share",
]
"""Purchase behaviour only: e-mail engagement is bimodal (most customers open nothing), so
as a clustering feature it splits every behaviour group in two; profiles still show it."""


class SegmentsConfig(_Strict):
    """Customer segments: method, features, choice of k and business rules (docs/segments.md)."""

    method: Literal["kmeans", "gmm", "ward", "hdbscan", "dbscan", "rfm"] = "kmeans"
    features: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SEGMENT_FEATURES),
        description="numeric features from the catalog that the clustering sees",
    )
    k: int | None = Field(default=None, ge=2, description="fixed number of segments")
    k_range: tuple[int, int] = Field(default=(3, 10), description="k evaluated when k is unset")
    min_purchases: int = Field(
        default=2,
        ge=0,
        description="customers with fewer purchases get a rule segment (No Purchase Yet, "
        "One-Time Buyers) instead of a cluster",
    )
    min_share: float = Field(
        default=0.03,
        ge=0,
        lt=0.5,
        description="smallest segment, as a share of clustered customers",
    )
    scaling: Literal["log", "quantile"] = "log"
    pca: float | None = Field(
        default=None,
        gt=0,
        description="PCA before clustering: a share of variance to keep (< 1) or components",
    )
    clip: float = Field(default=4.0, gt=0, description="outliers clipped at this many SDs")
    eps: float | None = Field(default=None, gt=0, description="DBSCAN radius (default: chosen)")
    sample: int = Field(default=20_000, ge=1000, description="rows for silhouette, Ward, density")
    bootstrap: int = Field(default=20, ge=0, description="bootstrap refits for stability")
    surrogate_depth: int = Field(default=6, ge=1, le=8)
    surrogate_features: int = Field(default=6, ge=1)
    names: dict[str, str] = Field(
        default_factory=dict, description="automatic name -> your name for a segment"
    )
    merge: dict[str, str] = Field(
        default_factory=dict,
        description="automatic name -> automatic name of the segment it should join",
    )
    seed: int = 0

    @field_validator("k_range")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 2 <= value[0] <= value[1]:
            raise ValueError("k_range is [lowest, highest] with 2 <= lowest <= highest")
        return value


class TuningConfig(_Strict):
    """The Optuna search of LightGBM settings (docs/models.md#tuning)."""

    trials: int = Field(default=20, ge=0, description="trials per training; 0 turns tuning off")
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="stop starting new trials after this many seconds (default: none, so "
        "the same rows and settings give the same model on any machine)",
    )
    pruning: bool = Field(default=True, description="stop trials behind the median early")
    sample_rows: int = Field(
        default=200_000,
        ge=1000,
        description="trials learn from at most this many training rows (the final fit: all)",
    )


class ClvConfig(_Strict):
    """Customer lifetime value: purchase and spend models (docs/clv.md)."""

    model: Literal["bgnbd", "mbgnbd", "pareto"] = Field(
        default="bgnbd", description="the purchase model fitted and scored"
    )
    unit_days: float = Field(default=7.0, gt=0, description="time unit of the models (weeks)")
    horizon_days: int = Field(default=365, ge=1, description="horizon of `score clv`")
    discount: float = Field(default=0.1, ge=0, description="annual discount rate of CLV")
    margin: float = Field(default=0.3, gt=0, le=1, description="share of spend that is profit")


class ModelsConfig(_Strict):
    """Propensity models: learners, calibration and LightGBM settings (docs/models.md)."""

    labels: list[str] = Field(
        default_factory=lambda: ["churn_90d"],
        description="labels `custintel run` trains, promotes (gates permitting) and scores",
    )
    cost_per_contact: float = Field(default=1.5, ge=0, description="for the threshold table")
    value_per_success: float = Field(default=40.0, ge=0, description="for the threshold table")
    algorithms: list[Literal["logistic", "lightgbm"]] = Field(
        default_factory=lambda: ["logistic", "lightgbm"],
        description="learners compared on validation; the best is kept",
    )
    calibration: Literal["isotonic", "sigmoid"] = "isotonic"
    crossfit_tables: bool = Field(
        default=True,
        description="a table of your own without a time column: choices by cross-validation "
        "and an out-of-fold estimate (false: a random 60/20/20 split)",
    )
    crossfit_max_rows: int = Field(
        default=20_000,
        ge=100,
        description="larger tables without a time column use the random 60/20/20 split: "
        "a fifth of them is enough to stop, calibrate and test on",
    )
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    imbalance: Literal["none", "class_weight", "undersample", "oversample"] = Field(
        default="none",
        description="how LightGBM treats the rarer class (the logistic baseline always "
        "weighs classes)",
    )
    compare_imbalance: bool = Field(
        default=True, description="fit LightGBM with every imbalance strategy and report them"
    )
    lightgbm: dict[str, float | int] = Field(
        default_factory=dict,
        description="LightGBM settings replacing the defaults (learning_rate, num_leaves, ...)",
    )
    gates: dict[str, float] = Field(
        default_factory=lambda: {"auc": 0.7, "top_decile_lift": 1.5},
        description="out-of-time minimums a version must meet before `model promote`",
    )
    chunk_rows: int = Field(default=200_000, ge=1000, description="rows scored at a time")
    exact_reasons_rows: int = Field(
        default=50_000,
        ge=1000,
        description="up to this many customers get exact SHAP reasons; more: binned dependence",
    )
    bootstrap_rounds: int = Field(
        default=200, ge=20, description="paired bootstrap rounds of champion-challenger"
    )
    seed: int = 0

    @field_validator("algorithms")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one algorithm")
        return list(dict.fromkeys(value))


class SourceConfig(_Strict):
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


class ProjectConfig(_Strict):
    """The whole ``custintel.yaml``."""

    name: str = "custintel-project"
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    sources: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], SourceConfig] = Field(
        default_factory=dict
    )
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    clv: ClvConfig = Field(default_factory=ClvConfig)
    stages: list[Literal["ingest", "identity", "features", "segments", "models", "clv"]] = Field(
        default_factory=lambda: list(STAGES)
    )
    reports_dir: str = "reports"
    artifacts_dir: str = Field(default="artifacts", description="model artefacts of the registry")

    def quality_for(self, source: str) -> QualityConfig:
        """The project's quality settings with the keys a source sets itself replaced."""
        own = self.sources[source].quality
        if own is None:
            return self.quality
        return self.quality.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})

    def config_hash(self) -> str:
        """A short hash of the effective configuration, recorded in lineage."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Find the YAML line of a pydantic error location, for a message users can follow."""
    node = root
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


MAX_YAML_VALUES = 100_000
"""A configuration expands to far fewer values; more is an alias bomb (or a mistake)."""


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


def _check_nodes(root: yaml.Node | None, origin: str) -> None:
    """Refuse what PyYAML accepts silently: a key given twice in one mapping (the
    second would quietly win) and aliases that expand to an enormous document."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] < 0:
                raise ConfigError(
                    f"{origin}:{node.start_mark.line + 1}: a YAML alias refers to itself"
                )
            return sizes[key]
        if depth > 100:
            raise ConfigError(f"{origin}:{node.start_mark.line + 1}: nested too deeply")
        sizes[key] = -1
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    line = k.start_mark.line + 1
                    if k.value in seen:
                        raise ConfigError(
                            f"{origin}:{line}: key {_shown(k.value)} appears twice in one "
                            f"mapping (first on line {seen[k.value]}); the second would "
                            "silently replace the first"
                        )
                    seen[k.value] = line
                total += size(k, depth + 1) + size(v, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v, depth + 1) for v in node.value)
        if total > MAX_YAML_VALUES:
            raise ConfigError(
                f"{origin}:{node.start_mark.line + 1}: the YAML expands to more than "
                f"{MAX_YAML_VALUES:,} values through aliases (*name); refused"
            )
        sizes[key] = total
        return total

    if root is not None:
        size(root, 0)


def validate_yaml(text: str, origin: str, model: type[M]) -> tuple[M, Any]:
    """Parse YAML text into ``model``; errors name the file, line and YAML path.

    Returns the model and the composed YAML node tree (for later errors with lines).
    """
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise ConfigError(
            f"{origin}: the file is empty (no settings, no sources); `custintel init` writes "
            "a starting one and docs/configuration.md describes every key"
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_nodes(root, origin)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data), root
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"])
            line = _line_of(root, err["loc"])
            where = f"{origin}:{line}" if line else origin
            got = err.get("input")
            got_text = "" if err["type"] == "missing" else f" (got {_shown(got)})"
            problems.append(f"{where}: {path}: {err['msg']}{got_text}")
        raise ConfigError("; ".join(problems)) from exc


def parse_config(text: str, origin: str = CONFIG_FILE) -> ProjectConfig:
    """Parse and validate configuration text; errors name the YAML path and line."""
    config, root = validate_yaml(text, origin, ProjectConfig)
    for name, source in config.sources.items():
        try:
            source.check_shape()
        except ValueError as exc:
            line = _line_of(root, ("sources", name))
            raise ConfigError(f"{origin}:{line}: sources.{name}: {exc}") from exc
    _check_columns(config, root, origin)
    return config


def _check_columns(config: ProjectConfig, root: yaml.Node | None, origin: str) -> None:
    """Column names in rules and mappings must be columns of the contract they apply to:
    a misspelt one would otherwise be a rule that never runs."""

    def refuse(path: tuple[str, ...], column: str, known: list[str], what: str) -> None:
        line = _line_of(root, (*path, column)) or _line_of(root, path)
        where = f"{origin}:{line}" if line else origin
        raise ConfigError(
            f"{where}: {'.'.join(path)}.{column}: no column {column!r} in {what} "
            f"(columns: {', '.join(known)})"
        )

    used: set[str] = set()
    for name, source in config.sources.items():
        names = get_contract(source.contract).names
        used.update(names)
        what = f"contract {source.contract!r}"
        for key in ("columns", "constants"):
            for column in getattr(source, key):
                if column not in names:
                    refuse(("sources", name, key), column, names, what)
        if source.quality is not None:
            for column in source.quality.allowed_values:
                if column not in names:
                    refuse(("sources", name, "quality", "allowed_values"), column, names, what)
    if config.sources:
        for column in config.quality.allowed_values:
            if column not in used:
                refuse(("quality", "allowed_values"), column, sorted(used), "any source's contract")


def load_config(project_dir: Path) -> ProjectConfig:
    path = Path(project_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path}: no project here (run `custintel init {project_dir}` first, or pass --project)"
        )
    return parse_config(path.read_text(encoding="utf-8"), origin=str(path))


def dump_config(config: ProjectConfig) -> str:
    """YAML text of a config, leaving out values equal to their defaults."""
    data = config.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
