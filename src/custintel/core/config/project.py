"""The whole ``custintel.yaml``: its model, and loading it with errors that name the YAML
path and line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from custintel.core.config.base import CONFIG_FILE, STAGES, M, Strict
from custintel.core.config.campaigns import (
    CampaignConfig,
    ChannelConfig,
    ContactPolicyConfig,
    OfferConfig,
    _default_channels,
    check_campaigns,
)
from custintel.core.config.capabilities import (
    ClvConfig,
    ConsentConfig,
    FeaturesConfig,
    IdentityConfig,
    MeasurementConfig,
    ModelsConfig,
    SegmentsConfig,
    ServingConfig,
)
from custintel.core.config.sources import IngestConfig, QualityConfig, SourceConfig, WarehouseConfig
from custintel.core.contracts import get_contract
from custintel.core.errors import ConfigError
from custintel.core.stages import order_problems


class ProjectConfig(Strict):
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
    consent: ConsentConfig = Field(default_factory=ConsentConfig)
    channels: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], ChannelConfig] = Field(
        default_factory=_default_channels, description="contact channels (docs/campaigns.md)"
    )
    contact_policy: ContactPolicyConfig = Field(default_factory=ContactPolicyConfig)
    offers: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], OfferConfig] = Field(
        default_factory=dict
    )
    campaigns: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], CampaignConfig] = Field(
        default_factory=dict
    )
    measurement: MeasurementConfig = Field(default_factory=MeasurementConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    stages: list[str] = Field(
        default_factory=lambda: list(STAGES),
        description="stages `custintel run` executes, in order (docs/architecture.md#stages)",
    )
    reports_dir: str = "reports"
    artifacts_dir: str = Field(default="artifacts", description="model artefacts of the registry")

    @field_validator("stages")
    @classmethod
    def _stage_order(cls, value: list[str]) -> list[str]:
        problems = order_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _campaigns(self) -> ProjectConfig:
        problems = check_campaigns(self.channels, self.contact_policy, self.offers, self.campaigns)
        if problems:
            raise ValueError("; ".join(problems))
        return self

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
            if not path:  # a check across sections: its message names the keys
                problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
                continue
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
