"""The command line, end to end on a real project folder."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from custintel.cli.main import app
from custintel.core.config import SourceConfig
from custintel.core.stages import STAGE_NAMES
from tests.conftest import ingest, make_project, paused_ingest, query


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_whole_tour_with_json(runner: CliRunner, tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    code, out, _ = run(runner, "init", str(shop), "--with-sample", "--json")
    assert code == 0 and json.loads(out)["sample"] is True
    assert (shop / "custintel.yaml").is_file() and (shop / "custintel.duckdb").is_file()

    code, out, _ = run(runner, "ingest", "--project", str(shop), "--json")
    assert code == 0
    summary = json.loads(out)
    truth = json.loads((shop / "data" / "truth" / "expected_quality.json").read_text())
    assert summary["rows_in"] == sum(t["rows_in"] for t in truth.values())
    assert summary["rows_quarantined"] == sum(sum(t["rules"].values()) for t in truth.values())

    code, out, _ = run(runner, "quality", "--project", str(shop), "--json")
    quality = json.loads(out)
    assert code == 0 and quality["sources"]["shop_orders"]["rules"] == truth["shop_orders"]["rules"]
    assert quality["sources"]["crm_customers"]["extra_columns"] == ["Newsletter"]
    assert {e["rule"] for e in quality["examples"]} >= {"malformed", "unique.key", "type.order_ts"}

    code, out, _ = run(runner, "run", "--project", str(shop), "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] and result["stages"][0]["stage"] == "ingest"
    assert result["stages"][0]["detail"]["files_skipped"] == 9  # nothing new: a no-op

    code, out, _ = run(runner, "status", "--project", str(shop), "--json")
    status = json.loads(out)
    tables = {t["table"]: t["rows"] for t in status["tables"]}
    assert tables["clean.orders"] == 3094 and tables["ops.pipeline_runs"] == len(
        STAGE_NAMES
    )  # one row per stage
    assert tables["features.customer"] == tables["customer.profile"] > 0
    assert len(status["ingest_runs"]) == 2

    code, out, _ = run(runner, "report", "--project", str(shop), "--json")
    index = Path(json.loads(out)["index"])
    assert code == 0 and index.is_file()
    quality_page = (index.parent / "quality.html").read_text()
    assert "quality.html" in index.read_text()
    assert '<script src="plotly.min.js"></script>' in quality_page
    assert (index.parent / "plotly.min.js").stat().st_size > 1_000_000
    assert not re.search(r"<script[^>]+src=[\"']https?://", quality_page), (
        "the report must open offline"
    )
    assert "unique.key" in quality_page and "reconciled" in quality_page


def test_tables_are_printed_without_json(runner: CliRunner, tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    run(runner, "init", str(shop), "--with-sample")
    code, out, _ = run(runner, "ingest", "--project", str(shop))
    assert code == 0 and "rows in =" in out
    code, out, _ = run(runner, "quality", "--project", str(shop))
    assert code == 0 and "Quality by source" in out
    code, out, _ = run(runner, "status", "--project", str(shop))
    assert code == 0 and "clean.orders" in out


def test_failures_print_one_line_and_exit_non_zero(runner: CliRunner, tmp_path: Path) -> None:
    code, out, err = run(runner, "status", "--project", str(tmp_path / "nowhere"))
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "no project here" in err and "Traceback" not in err

    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "custintel.yaml").write_text("sources:\n  o:\n    contract: orders\n    pth: x.csv\n")
    code, _, err = run(runner, "ingest", "--project", str(shop))
    assert code == 1 and "custintel.yaml:4: sources.o.pth: Extra inputs are not permitted" in err

    code, _, err = run(runner, "init", str(shop))
    assert code == 1 and "already exists" in err


def test_a_failing_source_fails_the_run_and_resume_finishes_it(
    runner: CliRunner, tmp_path: Path
) -> None:
    shop = tmp_path / "shop"
    run(runner, "init", str(shop), "--with-sample")
    db = shop / "data" / "store" / "pos.db"
    db.rename(db.with_suffix(".moved"))
    code, out, err = run(runner, "run", "--project", str(shop), "--json")
    assert code == 1 and "database file not found" in err
    failed = json.loads(out)
    assert not failed["ok"]
    db.with_suffix(".moved").rename(db)
    code, out, _ = run(runner, "run", "--project", str(shop), "--resume", "--json")
    resumed = json.loads(out)
    assert code == 0 and resumed["ok"] and resumed["run_id"] == failed["run_id"]
    detail = resumed["stages"][0]["detail"]
    assert (
        detail["files_loaded"] == 1 and detail["files_skipped"] == 8
    )  # only the store query was left


def test_user_mistakes_are_never_unexpected(runner: CliRunner, tmp_path: Path) -> None:
    """Issue observations 9 and 10: bad options, bad config and markup in names."""
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "custintel.yaml").write_text("quality:\n  earliest_timestamp: not-a-date\n")
    code, _, err = run(runner, "status", "--project", str(shop))
    assert code == 1 and "unexpected" not in err
    assert "custintel.yaml:2: quality.earliest_timestamp" in err

    (shop / "custintel.yaml").write_text("sources:\n  Orders:\n    contract: orders\n    path: x\n")
    code, _, err = run(runner, "status", "--project", str(shop))
    assert code == 1 and "[a-z][a-z0-9_]*" in err  # the pattern survives the terminal

    (shop / "custintel.yaml").write_text("name: shop\n")
    code, _, err = run(runner, "segment", "fit", "--k", "1", "--project", str(shop))
    assert code == 1 and "unexpected" not in err and "--k 1" in err
    assert err.strip().count("\n") == 0

    (shop / "custintel.yaml").write_text("name: " + "x" * 5000 + "\x1b[31m\nname: again\n")
    code, _, err = run(runner, "status", "--project", str(shop))
    assert code == 1 and len(err) < 1000 and "\x1b" not in err


def test_ctrl_c_says_interrupted_and_a_rerun_completes(tmp_path: Path) -> None:
    project = make_project(tmp_path, orders=SourceConfig(contract="orders", path="data/*.csv"))
    rows = "".join(f"O{i},C{i},2025-01-01,10.00,EUR\n" for i in range(2000))
    (project / "data" / "a.csv").write_text(
        "order_id,customer_ref,order_ts,amount,currency\n" + rows
    )
    proc = paused_ingest(
        project, tmp_path / "paused", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "unexpected" not in err and "again completes it" in err
    assert query(project, "SELECT count(*) FROM ops.ingested_files") == [(0,)]
    assert ingest(project)["rows_clean"] == 2000
