"""`custintel simulate` writes deterministic source files that ingest cleanly, and a truth
that agrees with them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from custintel.cli.main import app
from custintel.simulate.writer import SimulationConfig, simulate
from tests.conftest import query


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    simulate(tmp_path / "a", SimulationConfig(customers=1500, seed=3))
    simulate(tmp_path / "b", SimulationConfig(customers=1500, seed=3))
    simulate(tmp_path / "c", SimulationConfig(customers=1500, seed=4))
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a == b and len(a) >= 9
    assert a["shop/orders.csv"] != c["shop/orders.csv"]


def test_simulate_then_init_from_simulation_maps_every_file(tmp_path: Path) -> None:
    runner = CliRunner()
    shop = tmp_path / "shop"
    result = runner.invoke(
        app,
        ["simulate", "--customers", "2000", "--seed", "5", "--out", str(shop / "data"), "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["as_of"] == "2025-06-30"
    assert (
        runner.invoke(app, ["init", str(shop), "--from-simulation", str(shop / "data")]).exit_code
        == 0
    )
    result = runner.invoke(app, ["ingest", "--project", str(shop), "--json"])
    assert result.exit_code == 0, result.output
    ingested = json.loads(result.stdout)
    files = [p for p in (shop / "data").rglob("*.csv")]
    assert ingested["files_failed"] == 0 and ingested["files_loaded"] == len(files) > 80
    assert ingested["rows_in"] == sum(
        summary[k]
        for k in (
            "records",
            "order_rows",
            "email_events",
            "consents",
            "support_tickets",
            "web_events",
            "contacts",
        )
    )
    assert ingested["rows_quarantined"] + ingested["rows_duplicate"] == summary["faulty_rows"]
    tables = dict(
        query(
            shop,
            "SELECT 'email', count(*) FROM clean.email_events UNION ALL "
            "SELECT 'web', count(*) FROM clean.web_events UNION ALL "
            "SELECT 'contacts', count(*) FROM clean.contacts",
        )
    )
    assert tables == {
        "email": summary["email_events"],
        "web": summary["web_events"],
        "contacts": summary["contacts"],
    }


def test_every_knob_can_come_from_a_yaml_file(tmp_path: Path) -> None:
    knobs = tmp_path / "knobs.yaml"
    knobs.write_text(
        "customers: 300\nseed: 9\nfaults:\n  duplicate: 0.05\n  malformed_line: 0.0\n"
        "campaigns:\n  - {campaign_id: ONLY, week: 50, channel: sms, holdout: 0.5}\n"
    )
    out = tmp_path / "data"
    result = CliRunner().invoke(
        app, ["simulate", "--config", str(knobs), "--customers", "400", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    stored = json.loads((out / "truth" / "simulation.json").read_text())
    assert stored["people"] == 400  # the command line wins over the file
    assert stored["config"]["seed"] == 9 and stored["config"]["faults"]["duplicate"] == 0.05
    contacts = (out / "marketing" / "contacts.csv").read_text().splitlines()[1:]
    assert contacts and {line.split(",")[0] for line in contacts} == {"ONLY"}
    faults = pd.read_parquet(out / "truth" / "faults.parquet")
    assert "malformed_line" not in set(faults.fault)

    knobs.write_text("customers: 300\nfaults:\n  duplicat: 0.1\n")
    result = CliRunner().invoke(app, ["simulate", "--config", str(knobs), "--out", str(out)])
    assert result.exit_code == 1
    assert "knobs.yaml:3: faults.duplicat: Extra inputs are not permitted" in result.output
