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
