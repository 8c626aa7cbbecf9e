"""CLV on a bare purchase log: the published CDNOW file (headerless, whitespace
separated, no order ids, no customer profiles) read through configuration alone, and
the published BG/NBD and Gamma-Gamma figures reproduced through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from custintel.cli.main import app
from tests.conftest import SHARED_DATA, cdnow_source, query

CDNOW = SHARED_DATA / "cdnow_sample.txt"


def _log_project(root: Path, path: Path) -> Path:
    """A project holding only a purchase log in CDNOW's layout."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"name": "cdnow", "sources": {"cdnow": cdnow_source(path)}}
    (root / "custintel.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _cli(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cdnow_from_the_raw_file_gives_the_published_figures(tmp_path: Path) -> None:
    if not CDNOW.exists():
        pytest.skip(f"{CDNOW} is not here")
    project = str(_log_project(tmp_path / "shop", CDNOW))
    loaded = _cli("ingest", "--project", project)
    assert loaded["rows_in"] == loaded["rows_clean"] == 6919, loaded
    resolved = _cli("identity", "resolve", "--project", project)
    assert resolved["customers"] == 2357
    fit = _cli("clv", "fit", "--project", project, "--as-of", "1997-10-01")
    assert fit["customers"] == 2357 and fit["left_out_no_history"] == 0
    assert fit["repeat_buyers"] == 946
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in published.items():
        assert fit["purchases"]["params"][name] == pytest.approx(value, abs=0.0015), name
    assert fit["purchases"]["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    spend = fit["spend"]["params"]
    assert spend["p"] == pytest.approx(6.25, abs=0.01)
    assert spend["q"] == pytest.approx(3.74, abs=0.01)
    assert spend["gamma"] == pytest.approx(15.44, abs=0.01)
    checked = _cli(
        "clv",
        "validate",
        "--project",
        project,
        "--calibration-end",
        "1997-09-30",
        "--holdout-end",
        "1998-06-30",
    )
    # The published counts: 2,457 repeat purchases in the 39 calibration weeks, 1,882
    # in the 39 holdout weeks.
    assert checked["periods"]["calibration"]["customers"] == 2357
    assert checked["periods"]["calibration"]["repeat_purchases"] == 2457
    assert checked["periods"]["holdout"]["purchases"] == 1882
    scored = _cli("score", "clv", "--project", project, "--as-of", "1997-10-01")
    assert scored["customers"] == 2357


def test_zero_amounts_count_and_bad_dates_are_named(tmp_path: Path) -> None:
    """A free purchase is a purchase (flagged); a date in another format is quarantined
    with the column and value named; every line is accounted for."""
    log = tmp_path / "log.txt"
    log.write_text(
        " 001 1 19970101 1 10.00\n"
        " 001 1 19970301 1  0.00\n"
        " 002 1 19970105 2 20.00\n"
        " 002 1 1997-02-05 1 5.00\n"
        " 003 1 19970110 1 0\n"
        "\n"
        " 004 1 19970111 1\n"
    )
    project = _log_project(tmp_path / "shop", log)
    loaded = _cli("ingest", "--project", str(project))
    (result,) = loaded["results"]
    assert result["rows_in"] == 6  # the blank line is not a record
    assert result["rows_clean"] == 4 and result["rows_quarantined"] == 2
    assert result["flag_counts"] == {"amount.zero": 2}
    rows = query(project, "SELECT _line, rule, message FROM quarantine.rows ORDER BY _line")
    assert rows[0][:2] == (4, "type.order_ts") and "1997-02-05" in rows[0][2]
    assert rows[1][:2] == (7, "malformed") and "expected 5, found 4" in rows[1][2]
    # No order numbers in the log: each line is its own order, keyed by file and line.
    ids = query(project, "SELECT order_id, _file FROM clean.orders ORDER BY _line")
    assert [i for i, _ in ids] == [f"{f}:{n}" for (_, f), n in zip(ids, (1, 2, 3, 5), strict=True)]
    _cli("identity", "resolve", "--project", str(project))
    fit = CliRunner().invoke(
        app, ["clv", "fit", "--project", str(project), "--as-of", "1997-04-01", "--json"]
    )
    # Three buyers, too few to fit: the point is that nobody vanished on the way.
    summary = query(project, "SELECT count(DISTINCT customer_id) FROM identity.customer_map")
    assert summary[0][0] == 3, fit.output
