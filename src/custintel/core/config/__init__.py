"""The project configuration, ``custintel.yaml``, validated with pydantic.

Every model forbids unknown keys, so a typo fails when the file is loaded, and the error
names the YAML path, the line, what was expected and what came. The models live in
:mod:`.sources` (data in and out), :mod:`.capabilities` (each capability's settings) and
:mod:`.project` (the whole file and its loading); every name is importable from here.
"""

from custintel.core.config.base import (
    CONFIG_FILE,
    LABEL_PATTERN,
    STAGES,
)
from custintel.core.config.campaigns import (
    AudienceConfig,
    CampaignConfig,
    Caps,
    ChannelConfig,
    ContactPolicyConfig,
    Fatigue,
    GlobalControl,
    OfferConfig,
    Override,
    WebhookConfig,
)
from custintel.core.config.capabilities import (
    DEFAULT_SEGMENT_FEATURES,
    BlockingField,
    ClvConfig,
    ComparedField,
    ConsentConfig,
    FeaturesConfig,
    GoldenAttribute,
    IdentityConfig,
    MatchRule,
    MeasurementConfig,
    ModelsConfig,
    SegmentsConfig,
    ServingConfig,
    TuningConfig,
)
from custintel.core.config.project import (
    MAX_YAML_VALUES,
    ProjectConfig,
    dump_config,
    load_config,
    parse_config,
    validate_yaml,
)
from custintel.core.config.sources import (
    CsvOptions,
    DeletedFiles,
    IngestConfig,
    QualityConfig,
    SourceConfig,
    SparkConfig,
    SqlSource,
    WarehouseConfig,
)

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_SEGMENT_FEATURES",
    "LABEL_PATTERN",
    "MAX_YAML_VALUES",
    "STAGES",
    "AudienceConfig",
    "BlockingField",
    "CampaignConfig",
    "Caps",
    "ChannelConfig",
    "ClvConfig",
    "ComparedField",
    "ConsentConfig",
    "ContactPolicyConfig",
    "CsvOptions",
    "DeletedFiles",
    "Fatigue",
    "FeaturesConfig",
    "GlobalControl",
    "GoldenAttribute",
    "IdentityConfig",
    "IngestConfig",
    "MatchRule",
    "MeasurementConfig",
    "ModelsConfig",
    "OfferConfig",
    "Override",
    "ProjectConfig",
    "QualityConfig",
    "SegmentsConfig",
    "ServingConfig",
    "SourceConfig",
    "SparkConfig",
    "SqlSource",
    "TuningConfig",
    "WarehouseConfig",
    "WebhookConfig",
    "dump_config",
    "load_config",
    "parse_config",
    "validate_yaml",
]
