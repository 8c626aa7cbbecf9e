from __future__ import annotations

import pytest

from custintel.core.config import ProjectConfig, dump_config, parse_config
from custintel.core.errors import ConfigError

GOOD = """
name: shop
warehouse:
  url: duckdb://wh.duckdb
sources:
  orders:
    contract: orders
    path: data/*.csv
    csv:
      delimiter: ";"
    columns:
      order_id: OrderNo
    timezone: Europe/Berlin
    currency: eur
"""


def test_good_config_parses_and_round_trips() -> None:
    config = parse_config(GOOD)
    assert config.sources["orders"].csv.delimiter == ";"
    assert config.sources["orders"].currency == "EUR"
    again = parse_config(dump_config(config))
    assert again == config


def test_defaults_give_a_duckdb_file_in_the_project() -> None:
    assert ProjectConfig().warehouse.url == "duckdb://custintel.duckdb"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("delimiter", "delimter"),
            ["custintel.yaml:10", "sources.orders.csv.delimter", "Extra inputs"],
        ),
        (
            GOOD.replace("contract: orders", "contract: purchases"),
            ["custintel.yaml:7", "sources.orders.contract", "'purchases'"],
        ),
        (
            GOOD.replace('delimiter: ";"', "delimiter: ';;'"),
            ["sources.orders.csv.delimiter", "single character"],
        ),
        (GOOD.replace("Europe/Berlin", "Mars/Olympus"), ["custintel.yaml:13", "unknown time zone"]),
        (GOOD.replace("currency: eur", "currency: euro"), ["sources.orders.currency", "3-letter"]),
        (
            GOOD.replace("    path: data/*.csv\n", ""),
            ["sources.orders", "exactly one of 'path' or 'sql'"],
        ),
        ("- just\n- a list\n", ["expected a mapping"]),
        ("name: [unclosed\n", ["not valid YAML"]),
        (GOOD.replace("  orders:", "  Orders:"), ["sources.Orders", "pattern"]),
    ],
)
def test_bad_config_names_path_line_and_expectation(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    message = str(info.value)
    for part in expected:
        assert part in message, message


ALIAS_BOMB = """a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
name: [*f, *f, *f, *f, *f, *f, *f, *f, *f]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # issue: each of these crashed as "unexpected", said nothing, or silently won
        (
            GOOD + "quality:\n  earliest_timestamp: not-a-date\n",
            ["custintel.yaml:", "quality.earliest_timestamp", "expected a date"],
        ),
        (
            GOOD + "  orders:\n    contract: customers\n    path: x.csv\n",
            ["custintel.yaml:", "key 'orders' appears twice", "first on line"],
        ),
        (ALIAS_BOMB, ["expands to more than 100,000 values"]),
        ("", ["the file is empty"]),
        ("# only a comment\n\n", ["the file is empty"]),
        (
            GOOD + "quality:\n  allowed_values:\n    colour: [red]\n",
            ["quality.allowed_values.colour", "no column 'colour'"],
        ),
        (
            GOOD.replace("order_id: OrderNo", "order_id: OrderNo\n      amont: total"),
            ["sources.orders.columns.amont", "no column 'amont' in contract 'orders'"],
        ),
    ],
)
def test_config_mistakes_are_one_clear_line(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    message = str(info.value)
    assert len(message) < 600, message[:200]
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ("[ingest, mailings]", ["unknown stage 'mailings'", "the stages are ingest, identity"]),
        ("[ingest, models, features]", ["'models' needs 'features'", "must come first"]),
        ("[identity, ingest]", ["'identity' needs 'ingest'"]),
        ("[ingest, ingest]", ["'ingest' listed more than once"]),
    ],
)
def test_stages_that_cannot_run_are_refused(stages: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"stages: {stages}\n")
    for part in expected:
        assert part in str(err.value)


def test_a_stage_may_run_alone_when_what_it_needs_ran_before() -> None:
    assert parse_config("stages: [segments]\n").stages == ["segments"]
    default = [
        "ingest", "identity", "features", "segments", "models", "clv", "campaigns",
        "measurement", "serving",
    ]  # fmt: skip
    assert parse_config("name: x\n").stages == default


def test_label_names_agree_with_the_labels_module() -> None:
    from custintel.features.labels import parse_label

    for name in ("churn_90d", "high_value_365d", "new_category_30d", "response_spring"):
        parse_config(f"features: {{labels: [{name}]}}\n")
        parse_label(name)
    with pytest.raises(ConfigError, match="unknown label"):
        parse_config("features: {labels: [churn_soon]}\n")
