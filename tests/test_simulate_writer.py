"""`custintel simulate` writes deterministic source files that ingest cleanly, and a truth
that agrees with them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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
