"""The documentation covers every contract column, config key, CLI command and rule."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from custintel.cli.main import app
from custintel.core import config
from custintel.core.contracts import CONTRACTS, LINEAGE_COLUMNS

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_contract_column_is_in_the_data_model() -> None:
    text = (DOCS / "data-model.md").read_text()
    for contract in CONTRACTS.values():
        section = text.split(f"### `{contract.name}`", 1)[1].split("###", 1)[0]
        for col in contract.columns:
            assert f"| `{col.name}` | {col.type} |" in section, (contract.name, col.name)
    for name in LINEAGE_COLUMNS:
        assert f"`{name}`" in text


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    models = [
        getattr(config, name)
        for name in config.__all__
        if isinstance(getattr(config, name), type) and issubclass(getattr(config, name), BaseModel)
    ]
    assert len(models) >= 16
    for model in models:
        for key in model.model_fields:
            assert f"| `{key}` |" in text, f"{model.__name__}.{key}"


def test_every_stage_has_its_page_and_is_in_the_configuration_docs() -> None:
    from custintel.core.stages import STAGE_NAMES, STAGES

    for stage in STAGES:
        assert (DOCS / stage.docs).is_file(), stage.name
    default = f"| `stages` | `[{', '.join(STAGE_NAMES)}]` |"
    assert default in (DOCS / "configuration.md").read_text()


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    names += [g.name for g in app.registered_groups]
    assert names
    for name in names:
        assert f"`custintel {name}" in text, name


def test_every_rule_family_is_documented() -> None:
    text = (DOCS / "ingest.md").read_text()
    for rule in (
        "malformed",
        "not_null.",
        "type.",
        "allowed.",
        "range.",
        "future.",
        "amount.sign",
        "amount.zero",
        "unique.key",
        "syntax.email",
        "syntax.phone",
    ):
        assert f"`{rule}" in text, rule


def test_readme_starts_with_the_two_setup_commands() -> None:
    head = README.read_text().split("\n## ", 1)[0]
    commands = re.findall(r"^make (\w+)", head, flags=re.M)
    assert commands == ["demo", "test"]


def test_every_feature_is_documented() -> None:
    from custintel.features.definitions import Params, feature_set

    text = (DOCS / "features.md").read_text()
    for name in feature_set(Params()).names():
        assert f"| `{name}` |" in text, name
    assert "| `category_share_<category>` |" in text
