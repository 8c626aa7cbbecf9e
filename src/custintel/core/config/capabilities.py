"""The settings of each capability: identity, features, segments, models, CLV, consent."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from custintel.core.config.base import LABEL_PATTERN, Strict

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


class MatchRule(Strict):
    """A deterministic rule: records equal on every field (all present) are one customer."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    fields: list[Literal[ComparedField, "email_canonical"]] = Field(min_length=1)
    compatible_first_name: bool = Field(
        default=True,
        description="the household guard: also require first names that may be the same "
        "person (equal, a nickname of each other, swapped with the last name, a likely "
        "typo, or one missing); turn off only for a key no two people ever share",
    )


class IdentityConfig(Strict):
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


class FeaturesConfig(Strict):
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
    psi_watch: float = Field(default=0.1, gt=0, description="PSI above this: worth watching")
    psi_unstable: float = Field(default=0.25, gt=0, description="PSI above this: unstable")
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
        for name in value:
            if not LABEL_PATTERN.match(name):
                raise ValueError(
                    f"unknown label {name!r}: use churn_<days>d, purchase_<days>d, "
                    "spend_<days>d, new_category_<days>d, high_value_<days>d or "
                    "response_<campaign id>"
                )
        return value

    @model_validator(mode="after")
    def _psi_order(self) -> FeaturesConfig:
        if self.psi_watch >= self.psi_unstable:
            raise ValueError("psi_watch must be below psi_unstable")
        return self

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


class SegmentsConfig(Strict):
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


class TuningConfig(Strict):
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


class ClvConfig(Strict):
    """Customer lifetime value: purchase and spend models (docs/clv.md)."""

    model: Literal["bgnbd", "mbgnbd", "pareto"] = Field(
        default="bgnbd", description="the purchase model fitted and scored"
    )
    unit_days: float = Field(default=7.0, gt=0, description="time unit of the models (weeks)")
    horizon_days: int = Field(default=365, ge=1, description="horizon of `score clv`")
    discount: float = Field(default=0.1, ge=0, description="annual discount rate of CLV")
    margin: float = Field(default=0.3, gt=0, le=1, description="share of spend that is profit")


class ModelsConfig(Strict):
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


class ConsentConfig(Strict):
    """How the consent history is read (docs/consent.md)."""

    marketing: Literal["opt_out", "opt_in"] = Field(
        default="opt_out",
        description="marketing contact without a record: allowed until withdrawn (opt_out) "
        "or denied until granted (opt_in)",
    )
    exclude_opted_out_from: list[Literal["features", "segments"]] = Field(
        default_factory=lambda: ["features", "segments"],
        description="besides training tables and scores (always), where customers who "
        "opted out of profiling are left out",
    )


class AttributionConfig(Strict):
    """Channel credit over the web journeys before each purchase (docs/measurement.md)."""

    enabled: bool = Field(
        default=True, description="the measurement stage attributes when web events carry utm tags"
    )
    lookback_days: int = Field(
        default=30, ge=1, le=365, description="touches older than this before a journey's end drop"
    )
    max_touches: int = Field(default=20, ge=1, le=200, description="last touches kept per journey")
    from_date: dt.date | None = Field(
        default=None, description="first day of journeys ending in the period (default: all)"
    )
    channels: dict[str, str] = Field(
        default_factory=dict,
        description="utm_medium (lower case) -> channel, added to the built-in mapping",
    )
    base_channels: list[str] = Field(
        default_factory=lambda: ["direct", "organic"],
        description="visits people make on their own: no credit in the calibrated attribution",
    )
    experiments: str | None = Field(
        default=None,
        description="CSV of channel holdout experiments (channel, treated, "
        "treated_conversions, control, control_conversions), relative to the project",
    )
    half_life: float = Field(
        default=2.0, gt=0, description="time-decay rule: touches back at which weight halves"
    )


class MeasurementConfig(Strict):
    """Lift, ROI and planning of campaigns from their randomized holdouts
    (docs/measurement.md)."""

    window_days: int = Field(default=28, ge=1, description="outcome window after each send")
    pre_days: int = Field(
        default=91, ge=1, description="pre-period before the send: CUPED and balance checks"
    )
    level: float = Field(default=0.95, gt=0.5, lt=1, description="confidence level")
    bootstrap_rounds: int = Field(
        default=2000, ge=0, le=100_000, description="BCa bootstrap of revenue (0: Welch)"
    )
    margin: float | None = Field(
        default=None, gt=0, le=1, description="share of revenue kept; default clv.margin"
    )
    min_per_arm: int = Field(default=100, ge=2, description="fewer customers: no lift claimed")
    control_shares: dict[str, float] = Field(
        default_factory=dict,
        description="designed control share of campaigns not configured here (for the "
        "sample-ratio check), by campaign id",
    )
    expected_lifts: dict[str, float] = Field(
        default_factory=dict,
        description="conversion lift (absolute) each campaign hopes for: the power check",
    )
    power: float = Field(default=0.8, gt=0, lt=1, description="power the holdout should give")
    attribution: AttributionConfig = Field(default_factory=AttributionConfig)
    uplift: bool = Field(
        default=True,
        description="the stage trains and scores an uplift model per configured campaign "
        "from the past campaigns it measured",
    )

    @field_validator("control_shares")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        for k, v in value.items():
            if not 0 < v < 1:
                raise ValueError(f"control_shares.{k}: a share lies between 0 and 1, not {v}")
        return value


class ServingConfig(Strict):
    """The real-time service (docs/serving.md)."""

    rate_per_s: float = Field(
        default=2000.0, ge=0, description="requests a second per API key and worker (0: no limit)"
    )
    burst: float = Field(default=4000.0, ge=1, description="requests a key may make at once")
    max_inflight: int = Field(
        default=64, ge=1, description="requests a worker takes at a time; beyond, 503 at once"
    )
    max_queue_ms: float = Field(
        default=30.0,
        gt=0,
        description="when a worker's requests wait longer than this to be taken up, new "
        "ones get 503 at once (the answers it accepts stay fast)",
    )
    max_body_bytes: int = Field(default=65536, ge=1024, description="largest request body")
    stale_after_hours: float = Field(
        default=48.0, gt=0, description="a snapshot older than this is flagged stale"
    )
    keep_snapshots: int = Field(default=3, ge=1, description="published snapshots kept on disk")
    redis_url: str | None = Field(
        default=None,
        description="several service instances: events (and opt-outs) go through one "
        "Redis stream at this URL, e.g. redis://host:6379/0",
    )
    redis_prefix: str | None = Field(
        default=None, description="key prefix in Redis (default: custintel:<project name>)"
    )
    fsync_events: bool = Field(
        default=False,
        description="write each recorded event through to the disk before answering "
        "(survives a power cut, not only a crash of the service; slower)",
    )
