"""Attribution in a project: utm-tagged web events ingested under another column layout,
journeys built in the warehouse, credit by every method, calibrated to the experiments;
and bad input named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from custintel.cli.main import app
from custintel.core.config import ProjectConfig
from custintel.measure.attribution import calibrated
from custintel.pipeline import measure_tasks
from custintel.pipeline.project import Project, init_project
from custintel.simulate.journeys import JourneyConfig, simulate_journeys

from .conftest import parse_json_output

# Another analytics export's names for the contract's columns.
LAYOUT = {
    "anonymous_id": "visitor",
    "session_id": "visit",
    "event_ts": "hit_time",
    "event_type": "hit",
    "page": "url",
    "utm_source": "src",
    "utm_medium": "med",
}


def _config(data: Path, experiments: str | None) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {
            "sources": {
                "site": {
                    "contract": "web_events",
                    "system": "site",
                    "path": str(data / "hits.csv"),
                    "columns": LAYOUT,
                    "timestamp_format": "%d/%m/%Y %H:%M:%S",
                }
            },
            "measurement": {"attribution": {"experiments": experiments}},
        }
    )


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    j = simulate_journeys(JourneyConfig(visitors=40_000), seed=7)
    root = tmp_path_factory.mktemp("attribution") / "site"
    data = root / "data"
    data.mkdir(parents=True)
    e = j.events.copy()
    # Mediums spelled as exports spell them: upper case, padded, e-mail with a hyphen.
    e["utm_medium"] = e.utm_medium.replace({"cpc": " CPC", "email": "E-Mail"})
    e["event_ts"] = e.event_ts.dt.strftime("%d/%m/%Y %H:%M:%S")
    e.rename(columns=LAYOUT).to_csv(data / "hits.csv", index=False)
    j.experiments.to_csv(data / "lift_studies.csv", index=False)
    init_project(root, _config(data, "data/lift_studies.csv"), force=True)
    with Project.open(root) as p:
        p.ingest()
    return root, j


def test_attribution_command_matches_the_method_on_the_same_journeys(
    tagged: tuple[Path, Any],
) -> None:
    root, j = tagged
    result = CliRunner().invoke(
        app, ["attribution", "--project", str(root), "--model", "calibrated", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = parse_json_output(result.stdout)
    assert out["conversions"] == j.converted
    assert set(out["calibrated"]) == set(j.experiments.channel)
    with Project.open(root) as p:
        paths, people = p.attribution_paths()
        stored = p.warehouse.table("measure", "attribution").execute()
        rows = p.warehouse.table("measure", "attribution_calibration").execute()
    expected = calibrated(paths, j.experiments, reach=people.set_index("channel").people)
    # One journey per visitor here: the people a channel touched are its journeys.
    assert (expected.people == expected.journeys).all()
    got = {c["channel"]: c["credit"] for c in out["channels"]}
    assert got == pytest.approx(expected.credit.to_dict())
    # Every method is recorded and each shares out all conversions (the calibrated one
    # the incremental ones only).
    per = stored.groupby("method").credit.sum()
    for method in ("first", "last", "linear", "position", "time_decay", "markov", "shapley"):
        assert per[method] == pytest.approx(j.converted)
    assert per["calibrated"] < j.converted
    assert set(rows.channel) == {"paid_search", "paid_social", "display", "video", "email",
                                 "affiliate", "organic", "direct"}  # fmt: skip
    # 40,000 visitors: a noisier measurement than the 500,000 of the truth test, still
    # close to the truth and nearly nothing to the channels without effect.
    truth = j.truth.set_index("channel").share
    share = expected.share.reindex(truth.index)
    assert float((share - truth).abs().mean()) < 0.04
    assert share[["affiliate", "organic", "direct"]].sum() < 0.05


def test_measurement_stage_attributes_without_campaigns(tagged: tuple[Path, Any]) -> None:
    root, _ = tagged
    with Project.open(root) as p:
        r = measure_tasks.run_stage(p, "run-attribution", None)
    assert r.status == "ok" and "attribution:" in r.message
    assert r.detail["attribution"]["status"] == "ok"
    result = CliRunner().invoke(app, ["report", "--project", str(root)])
    assert result.exit_code == 0, result.output
    page = (root / "reports" / "measurement.html").read_text()
    assert "Channel attribution" in page and "calibrated to experiments" in page
    assert "base channel: no credit" in page and "experiment: +" in page


def test_bad_attribution_input_is_named(tagged: tuple[Path, Any], tmp_path: Path) -> None:
    root, j = tagged
    runner = CliRunner()
    bad = runner.invoke(app, ["attribution", "--project", str(root), "--model", "magic"])
    assert bad.exit_code != 0 and "--model: choose from" in bad.output
    # An experiments file with a count that is not a count, then more buyers than people.
    data = root / "data"
    e = j.experiments.astype({"control": "object"})
    e.loc[2, "control"] = "n/a"
    e.to_csv(data / "broken.csv", index=False)
    init_project(root, _config(data, "data/broken.csv"), force=True)
    out = runner.invoke(app, ["attribution", "--project", str(root)])
    assert out.exit_code != 0
    assert "broken.csv: row 4, column control: 'n/a'" in " ".join(out.output.split())
    e = j.experiments.copy()
    e.loc[0, "treated_conversions"] = e.loc[0, "treated"] + 1
    e.to_csv(data / "broken.csv", index=False)
    out = runner.invoke(app, ["attribution", "--project", str(root)])
    assert "row 2, column treated_conversions" in " ".join(out.output.split())
    init_project(root, _config(data, "data/lift_studies.csv"), force=True)
    # Web events without utm tags: attribution says why it cannot run.
    plain = tmp_path / "plain"
    (plain / "data").mkdir(parents=True)
    j.events.drop(columns=["utm_source", "utm_medium"]).head(500).to_csv(
        plain / "data" / "web.csv", index=False
    )
    cfg = ProjectConfig.model_validate(
        {
            "sources": {
                "web": {
                    "contract": "web_events",
                    "system": "site",
                    "path": str(plain / "data" / "web.csv"),
                }
            }
        }
    )
    init_project(plain, cfg, force=True)
    with Project.open(plain) as p:
        p.ingest()
    out = runner.invoke(app, ["attribution", "--project", str(plain)])
    assert out.exit_code != 0 and "no utm_source / utm_medium" in out.output
    # A period with no purchase.
    out = runner.invoke(app, ["attribution", "--project", str(root), "--from", "2030-01-01"])
    assert out.exit_code != 0 and "no journey ended in a purchase" in out.output
    assert pd.Timestamp("2030-01-01") > j.events.event_ts.max()


def test_outside_journeys_with_multiplicative_effects(tmp_path: Path) -> None:
    """Sessions from a generator custintel did not write: repeat buyers, channels that
    multiply the purchase rate, the exporter's own names and spellings, a lift study per
    marketing channel. The project is configured as a user would: column names, the
    medium mapping, direct as the only base channel."""
    from .outside.journeys import MEDIUM_TO_CHANNEL, generate

    o = generate(400_000, seed=0)
    root = tmp_path / "outside"
    (root / "data").mkdir(parents=True)
    o.events.assign(hit_time=o.events.hit_time.dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
        root / "data" / "hits.csv", index=False
    )
    o.experiments.to_csv(root / "data" / "studies.csv", index=False)
    columns = {k: v for k, v in LAYOUT.items() if k != "page"}
    cfg = ProjectConfig.model_validate(
        {
            "sources": {
                "site": {"contract": "web_events", "path": str(root / "data/hits.csv"),
                         "columns": columns}
            },
            "measurement": {
                "attribution": {
                    "experiments": "data/studies.csv",
                    "channels": MEDIUM_TO_CHANNEL,
                    "base_channels": ["direct"],
                }
            },
        }
    )  # fmt: skip
    init_project(root, cfg, force=True)
    with Project.open(root) as p:
        p.ingest()
        a = p.attribute()
    cal = a["calibration"]
    assert a["conversions"] == o.purchases
    share = cal.share.reindex(o.truth.index, fill_value=0.0)
    error = float((share - o.truth).abs().mean())
    null = float(share[["audio", "banner", "direct"]].sum())
    assert error <= 0.02 and null <= 0.05, (error, null)
    credit = a["credit"]
    for method in ("first", "last", "linear", "position", "time_decay", "markov", "shapley"):
        s = credit[credit.method == method].set_index("channel").share
        assert float((s.reindex(o.truth.index, fill_value=0) - o.truth).abs().mean()) > 0.1
