"""Identity resolution on outside profiles: a register written by an independent
generator (tests/outside/profiles.py) with its own names, typos and households, US
columns and dates, and schema variants with no e-mail, no phone, only names + address +
birth date + an id number, and two already deduplicated systems. Real DuckDB files,
real Splink, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from custintel.cli.main import app
from custintel.core.config import IdentityConfig, MatchRule
from custintel.pipeline.project import Project
from tests.outside import identity_run, profiles

PEOPLE = 3000


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return profiles.people(PEOPLE, seed=5)


def _run(root: Path, population: pd.DataFrame, variant: str, **identity: object):
    files, truth = profiles.records(population, variant, seed=5)
    cfg = IdentityConfig(default_region="US", **identity)
    project = identity_run.write_project(root, files, cfg)
    summary, status = identity_run.resolve(project)
    return project, summary, status, identity_run.scores(identity_run.customer_map(project), truth)


@pytest.mark.parametrize(
    ("variant", "compared"),
    [
        ("full", {"email", "phone", "national_id", "birth_date", "postcode"}),
        ("no_email", {"phone", "national_id", "birth_date", "postcode"}),
        ("no_email_no_phone", {"national_id", "birth_date", "postcode", "address"}),
        ("id_only", {"national_id", "birth_date", "address"}),
    ],
)
def test_every_schema_links_people_and_keeps_households_apart(
    tmp_path: Path, population: pd.DataFrame, variant: str, compared: set[str]
) -> None:
    _, summary, status, got = _run(tmp_path / variant, population, variant)
    assert got["records_missing"] == 0, got  # nobody lost, bad birth dates included
    assert got["f1"] >= 0.99, got
    assert got["households_merged"] < 0.01 and got["household_pairs"] > 2000, got
    # The comparisons follow the fields present, and the choice is said.
    assert compared <= set(summary["plan"]["compared"]), summary["plan"]
    assert "email" not in summary["plan"]["compared"] or variant == "full"
    assert summary["links"].get("probabilistic", 0) > 100, summary
    assert "EM trained on" in status
    # Only the finest location field is compared; the others are left out with a reason.
    if "postcode" in summary["plan"]["compared"]:
        assert "city" not in summary["plan"]["compared"]
        assert any(n.startswith("city not compared") for n in summary["notes"])


def test_two_deduplicated_systems_are_linked_one_to_one(
    tmp_path: Path, population: pd.DataFrame
) -> None:
    project, _, _, got = _run(tmp_path / "two", population, "two_sources", link_only=True)
    assert got["f1"] >= 0.99 and got["households_merged"] < 0.01, got
    cmap = identity_run.customer_map(project)
    per_source = cmap.groupby(["customer_id", "source"]).size()
    assert per_source.max() == 1  # never two records of one system in a customer


def test_the_plain_output_says_what_was_compared_and_why_fields_were_left_out(
    tmp_path: Path, population: pd.DataFrame
) -> None:
    files, _ = profiles.records(population, "id_only", seed=5)
    project = identity_run.write_project(tmp_path / "plain", files)
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "--project", str(project)]).exit_code == 0
    result = runner.invoke(app, ["identity", "resolve", "--project", str(project)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "probabilistic:" in text and "EM trained on national_id" in text
    assert "not in the data: email, phone" in text


def test_when_em_cannot_train_defaults_are_used_and_said(
    tmp_path: Path, population: pd.DataFrame
) -> None:
    # A training rule on a field nobody holds gives EM nothing: the fallback is the
    # documented default m-probabilities, named in the status, and people still link.
    _, summary, status, got = _run(
        tmp_path / "em",
        population,
        "no_email_no_phone",
        training_rules=[["loyalty_id"]],
    )
    assert "default m-probabilities kept for" in " ".join(summary["notes"])
    assert "EM on loyalty_id failed" in " ".join(summary["notes"]) or "nothing" in status
    assert got["f1"] >= 0.95, got


def test_a_bad_birth_date_clears_the_value_not_the_person(
    tmp_path: Path, population: pd.DataFrame
) -> None:
    files, _ = profiles.records(population, "id_only", seed=5)
    frame = files["register"]
    bad = frame.index[:4]
    frame.loc[bad, "dob"] = ["00/00/0000", "02/30/1980", "01/01/2093", "12/31/1850"]
    project = identity_run.write_project(tmp_path / "dob", files)
    identity_run.resolve(project)
    with Project.open(project, read_only=True) as p:
        wh = p.warehouse
        clean = wh.table("clean", "customers").execute()
        fields = wh.table("quarantine", "fields").execute()
        rows = (
            wh.table("quarantine", "rows").count().execute()
            if wh.exists("quarantine", "rows")
            else 0
        )
        files_row = wh.table("ops", "ingested_files").execute().iloc[-1]
    assert len(clean) == len(frame) and rows == 0  # every row kept
    kept = clean.set_index("source_id").loc[frame.cust_no[bad], "birth_date"]
    assert kept.isna().all()
    cleared = fields.set_index("_line").sort_index()
    assert list(cleared.loc[[2, 3, 4, 5], "raw_value"]) == [
        "00/00/0000",
        "02/30/1980",
        "01/01/2093",
        "12/31/1850",
    ]
    assert set(cleared.loc[[2, 3], "rule"]) == {"type.birth_date"}
    assert cleared.loc[4, "rule"] == "future.birth_date"
    assert cleared.loc[5, "rule"] == "range.birth_date"
    counts = json.loads(files_row.field_counts)
    assert sum(counts.values()) == len(fields)
    assert files_row.rows_in == files_row.rows_clean == len(frame)


def test_every_default_rule_keeps_household_members_apart(tmp_path: Path) -> None:
    """Two members of one household share surname, address, landline and a family
    e-mail: no default rule may link them; the same person under a nickname links."""
    cfg = IdentityConfig()
    assert all(r.compatible_first_name for r in cfg.rules)
    people = pd.DataFrame(
        {
            "cust_no": ["A1", "A2", "A3"],
            "given_name": ["Robert", "Mary", "Bob"],
            "surname": ["Okafor", "Okafor", "Okafor"],
            "ssn": ["111-22-3333", None, "111223333"],
            "phone_number": ["(212) 555-0147"] * 3,
            "email_address": ["okafor.family@gmail.com"] * 3,
            "street": ["12 Elm St"] * 3,
            "dob": ["01/02/1970", "03/04/1972", "01/02/1970"],
        }
    )
    project = identity_run.write_project(
        tmp_path / "house",
        {"crm": people},
        IdentityConfig(default_region="US", probabilistic=False),
    )
    identity_run.resolve(project)
    cmap = identity_run.customer_map(project).set_index("source_id").customer_id
    assert cmap["A1"] == cmap["A3"] != cmap["A2"]
    # A rule that turns the guard off says so explicitly, and then it does link.
    loose = IdentityConfig(
        default_region="US",
        probabilistic=False,
        rules=[MatchRule(name="phone", fields=["phone"], compatible_first_name=False)],
    )
    project = identity_run.write_project(tmp_path / "loose", {"crm": people}, loose)
    identity_run.resolve(project)
    assert identity_run.customer_map(project).customer_id.nunique() == 1
