"""Identity resolution against the simulator's truth: quality, persistent ids, stability,
placeholders and bad input. Real DuckDB files, real Splink."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from custintel.cli.main import app
from custintel.core.config import ProjectConfig
from custintel.pipeline.project import Project, init_project
from custintel.simulate.writer import PROFILES, SimulationConfig, simulate, simulation_sources
from tests.conftest import query

CUSTOMERS = 4000


def _project(root: Path, data: Path) -> Path:
    """A project mapping only the three customer-profile files of a simulation."""
    sources = {k: v for k, v in simulation_sources(str(data)).items() if v.contract == "customers"}
    init_project(root, ProjectConfig(name="ids", sources=sources))
    return root


def _resolve(project: Path) -> dict:
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--project", str(project), "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["identity", "resolve", "--project", str(project), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _map(project: Path) -> pd.DataFrame:
    rows = query(project, "SELECT source, source_id, customer_id FROM identity.customer_map")
    return pd.DataFrame(rows, columns=["source", "source_id", "customer_id"])


def _with_truth(cmap: pd.DataFrame, data: Path) -> pd.DataFrame:
    truth = pd.read_parquet(data / "truth" / "records.parquet")
    return cmap.merge(truth, left_on=["source", "source_id"], right_on=["system", "source_id"])


def _pairs(labels: pd.Series) -> int:
    n = labels.value_counts()
    return int((n * (n - 1) // 2).sum())


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("identity")
    data = root / "data"
    simulate(data, SimulationConfig(customers=CUSTOMERS, seed=21))
    project = _project(root / "shop", Path("..") / "data")
    return project, data, _resolve(project)


def test_quality_against_the_truth(resolved) -> None:
    project, data, summary = resolved
    m = _with_truth(_map(project), data)
    records = pd.read_parquet(data / "truth" / "records.parquet")
    assert len(m) == len(records) == summary["records"]
    together = m.groupby(["customer_id", "person_id"]).size()
    tp = int((together * (together - 1) // 2).sum())
    precision, recall = tp / _pairs(m.customer_id), tp / _pairs(m.person_id)
    assert precision >= 0.99 and recall >= 0.97, (precision, recall)
    # People recovered exactly: all their records in one customer holding nobody else.
    per_person = m.groupby("person_id").customer_id.nunique()
    per_customer = m.groupby("customer_id").person_id.nunique()
    first = m.drop_duplicates("person_id").set_index("person_id").customer_id
    exact = (per_person == 1) & (first.map(per_customer) == 1)
    assert exact.mean() >= 0.95
    # Household members (same address, surname, landline, some the same e-mail) stay apart.
    people = m.drop_duplicates("person_id")
    members = people[people.person_id != people.household_id]
    host_customers = m.groupby("person_id").customer_id.agg(set)
    merged = [
        bool(host_customers[r.person_id] & host_customers[r.household_id])
        for r in members.itertuples()
        if r.household_id in host_customers.index
    ]
    assert len(merged) > 300 and np.mean(merged) < 0.01


def test_golden_record_recovers_the_true_details(resolved) -> None:
    project, data, summary = resolved
    m = _with_truth(_map(project), data)
    person = m.groupby("customer_id").person_id.agg(lambda s: s.mode()[0])
    cols = ["customer_id", "first_name", "last_name", "email", "phone", "birth_date", "profiles"]
    golden = pd.DataFrame(
        query(project, f"SELECT {', '.join(cols)} FROM customer.profile"), columns=cols
    )
    assert len(golden) == summary["customers"] == golden.customer_id.nunique()
    true = pd.read_parquet(data / "truth" / "identities.parquet").set_index("person_id")
    true = true.loc[person.reindex(golden.customer_id).to_numpy()]
    agree = {
        "first_name": golden.first_name.str.lower().to_numpy()
        == true.first_name.str.lower().to_numpy(),
        "last_name": golden.last_name.str.lower().to_numpy()
        == true.last_name.str.lower().to_numpy(),
        "email": golden.email.to_numpy() == true.email.str.lower().to_numpy(),
        "birth_date": golden.birth_date.to_numpy() == true.birth_date.to_numpy(),
    }
    shares = {k: float(v.mean()) for k, v in agree.items()}
    assert min(shares.values()) >= 0.92 and shares["birth_date"] >= 0.97, shares
    points = pd.DataFrame(
        query(project, "SELECT customer_id, kind, is_primary FROM identity.contact_points"),
        columns=["customer_id", "kind", "is_primary"],
    )
    # Every customer with an e-mail has exactly one primary e-mail among its contact points.
    primary = points[points.kind == "email"].groupby("customer_id").is_primary.sum()
    assert (primary == 1).all()


def test_explain_names_the_rule_or_the_weights_of_every_link(resolved) -> None:
    project, _, _ = resolved
    rows = query(
        project,
        "SELECT m.customer_id FROM identity.links l JOIN identity.customer_map m "
        "ON m.source = l.source_l AND m.source_id = l.source_id_l "
        "WHERE l.rule = 'probabilistic' ORDER BY l.match_weight LIMIT 1",
    )
    customer = rows[0][0]
    result = CliRunner().invoke(
        app, ["identity", "explain", customer, "--project", str(project), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["profiles"]) >= 2 and data["links"]
    for link in data["links"]:
        if link["rule"] == "probabilistic":
            # The parts (prior and each field) add up to the match weight.
            assert abs(sum(link["weights"].values()) - link["match_weight"]) < 0.05
            assert set(link["weights"]) >= {"prior", "first_name", "birth_date"}
        else:
            assert link["rule"] in {"email", "phone_surname", "loyalty_id"}
    missing = CliRunner().invoke(
        app, ["identity", "explain", "CU99999999", "--project", str(project)]
    )
    assert missing.exit_code == 1 and "no customer 'CU99999999'" in missing.output
    report = CliRunner().invoke(app, ["identity", "report", "--project", str(project), "--json"])
    assert report.exit_code == 0, report.output
    page = Path(json.loads(report.stdout)["report"]).read_text()
    assert "Identity resolution" in page and '"waterfall"' in page
    assert "weakest accepted link" in page
    assert "Last full run" in page and "model was trained on its" in page


def test_ids_persist_across_runs(resolved) -> None:
    project, _, _ = resolved
    before = _map(project)
    again = CliRunner().invoke(app, ["identity", "resolve", "--project", str(project), "--json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["created"] == summary["merged"] == summary["split"] == 0
    # Nothing changed, so the incremental run had nothing to link or re-cluster.
    assert summary["mode"] == "incremental"
    assert summary["delta_records"] == summary["reclustered_records"] == 0
    assert summary["links"] == json.loads(json.dumps(resolved[2]["links"]))
    after = _map(project)
    both = before.merge(after, on=["source", "source_id"], suffixes=("_before", "_after"))
    assert len(both) == len(before) == len(after)
    assert (both.customer_id_before == both.customer_id_after).all()
    # A full rebuild links everything again and keeps every id by overlap.
    rebuilt = CliRunner().invoke(
        app, ["identity", "resolve", "--project", str(project), "--full", "--json"]
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    summary = json.loads(rebuilt.stdout)
    assert summary["mode"] == "full" and summary["mode_reason"] == "--full"
    assert summary["created"] == summary["merged"] == summary["split"] == 0
    assert (
        _map(project).set_index(["source", "source_id"]).customer_id.sort_index()
        == after.set_index(["source", "source_id"]).customer_id.sort_index()
    ).all()


def _explain_pair(project: Path, left: str, right: str) -> dict:
    result = CliRunner().invoke(
        app, ["identity", "explain", left, right, "--project", str(project), "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_explain_a_pair_replays_the_rules_and_the_model(resolved) -> None:
    """Any two profiles: explain gives the rules, each comparison's weight and the
    decision; for linked pairs the weight equals what the resolve stored."""
    project, data, _ = resolved
    links = pd.DataFrame(
        query(
            project,
            "SELECT source_l || ':' || source_id_l, source_r || ':' || source_id_r, rule, "
            "match_weight, w_first_name, w_birth_date, w_email FROM identity.links "
            "QUALIFY row_number() OVER (PARTITION BY rule ORDER BY match_weight, source_id_l) <= 5",
        ),
        columns=["left", "right", "rule", "match_weight", "first_name", "birth_date", "email"],
    )
    weighted = links[links.rule == "probabilistic"].head(5)
    assert len(weighted) == 5
    for row in weighted.itertuples():
        out = _explain_pair(project, row.left, row.right)
        scored = out["probabilistic"]
        assert abs(scored["match_weight"] - row.match_weight) < 0.01, (row, scored)
        # Each comparison's part is the one the resolve stored for this link.
        part = {p["comparison"]: p["match_weight"] for p in scored["comparisons"]}
        for c in ("first_name", "birth_date", "email"):
            assert abs((part[c] or 0.0) - getattr(row, c)) < 0.05, (c, part, row)
        assert any(abs(w or 0.0) > 0.5 for w in part.values())
        assert out["decision"].startswith("linked") and out["same_customer"]
        assert scored["compared"] and not scored["household_guard"]
    ruled = links[links.rule == "email"].iloc[0]
    out = _explain_pair(project, ruled.left, ruled.right)
    assert out["rules"][0] == "email" and out["decision"] == "linked by rule email"

    # Two members of one household (same address and surname, different people) are
    # explained as not linked, and why.
    truth = pd.read_parquet(data / "truth" / "records.parquet")
    truth["ref"] = truth.system + ":" + truth.source_id
    groups = truth.groupby("household_id").person_id.nunique()
    house = truth[truth.household_id.isin(groups[groups > 1].index)]
    house = house.sort_values(["household_id", "person_id"])
    first = house.groupby("household_id").first()
    last = house.groupby("household_id").last()
    decisions = [
        _explain_pair(project, a, b)
        for a, b in zip(first.ref.head(5), last.ref.head(5), strict=True)
    ]
    assert all(not d["same_customer"] for d in decisions)
    assert all(d["decision"].startswith("not") for d in decisions)

    bad = CliRunner().invoke(
        app, ["identity", "explain", "crm", "nope:1", "--project", str(project)]
    )
    assert bad.exit_code == 1 and "source:source_id" in bad.output


def test_new_and_changed_records_keep_existing_ids(tmp_path: Path) -> None:
    """Hold back 5 % of the profiles, resolve, then add them and change 1 % of the rest:
    an existing id changes only where the new records truly merge two customers, or where
    a customer with a changed profile no longer holds together (a recorded split)."""
    data = tmp_path / "data"
    simulate(data, SimulationConfig(customers=CUSTOMERS, seed=22))
    full = {f: pd.read_csv(data / f / "customers.csv", dtype=str) for f, _ in PROFILES.values()}
    rng = np.random.default_rng(0)
    held = {f: rng.random(len(frame)) < 0.05 for f, frame in full.items()}
    for folder, frame in full.items():
        frame[~held[folder]].to_csv(data / folder / "customers.csv", index=False)
    project = _project(tmp_path / "shop", Path("..") / "data")
    _resolve(project)
    before = _map(project)

    changed = []
    for (system, (folder, columns)), frame in zip(PROFILES.items(), full.values(), strict=True):
        pick = ~held[folder] & (rng.random(len(frame)) < 0.01)
        frame.loc[pick, columns["phone"]] = (
            "+44 7000 000000"[:0]
            + "07999 "
            + pd.Series(
                rng.integers(100000, 999999, size=int(pick.sum())).astype(str),
                index=frame.index[pick],
            )
        )
        changed += [(system, s) for s in frame.loc[pick, columns["source_id"]]]
        frame.to_csv(data / folder / "customers.csv", index=False)
    summary = _resolve(project)
    after = _map(project)
    assert len(after) == sum(len(f) for f in full.values())
    # Only the new and changed profiles were linked (plus any holding a value that has
    # only now become too common to be a key).
    fresh = sum(int(h.sum()) for h in held.values()) + len(changed)
    assert summary["mode"] == "incremental"
    assert fresh <= summary["delta_records"] <= fresh * 1.05
    assert summary["reclustered_records"] < 0.3 * len(after)
    quality = _with_truth(after, data)
    both_ids = _pairs(quality.groupby(["customer_id", "person_id"]).ngroup())
    precision = both_ids / _pairs(quality.customer_id)
    recall = both_ids / _pairs(quality.person_id)
    assert precision >= 0.99 and recall >= 0.97, (precision, recall)
    both = before.merge(after, on=["source", "source_id"], suffixes=("_before", "_after"))
    moved = both[both.customer_id_before != both.customer_id_after]
    history = pd.DataFrame(
        query(project, "SELECT customer_id, event, related_id FROM identity.id_history"),
        columns=["customer_id", "event", "related_id"],
    )
    merged_into = history[history.event == "merged"].set_index("customer_id").related_id
    truth = _with_truth(after, data).set_index(["source", "source_id"]).person_id
    split_from = history[history.event == "split"].set_index("customer_id").related_id
    keys = before.set_index(["source", "source_id"]).customer_id
    edited_customers = {keys[k] for k in changed if k in keys.index}
    for row in moved.itertuples():
        if row.customer_id_before in edited_customers and (
            split_from.get(row.customer_id_after) == row.customer_id_before
        ):
            # A customer with a changed profile whose new values no longer hold it
            # together splits: the part that leaves gets a new id, recorded as split
            # from the old one.
            continue
        # The old id was merged into the new one, and the merge is true: the record's
        # person has records under both old ids.
        assert merged_into.get(row.customer_id_before) == row.customer_id_after, row
        person = truth[(row.source, row.source_id)]
        other = both[(both.customer_id_before != row.customer_id_before)]
        other = other[other.customer_id_after == row.customer_id_after]
        people = {truth[(r.source, r.source_id)] for r in other.itertuples()}
        assert person in people
    assert len(moved) <= 0.02 * len(both)
    assert summary["records"] == len(after) and len(changed) > 50


def test_placeholders_never_link_people(tmp_path: Path) -> None:
    data = tmp_path / "data"
    simulate(data, SimulationConfig(customers=600, seed=23))
    crm = pd.read_csv(data / "crm" / "customers.csv", dtype=str)
    truth = pd.read_parquet(data / "truth" / "records.parquet")
    person = crm.CustomerNo.map(truth[truth.system == "crm"].set_index("source_id").person_id)
    rows = crm.index[~person.duplicated()][:40]  # 40 records of 40 different people
    crm.loc[rows[:20], "EMail"] = "test@test.com"
    crm.loc[rows[20:], "Mobile"] = "0000000000"
    crm.to_csv(data / "crm" / "customers.csv", index=False)
    project = _project(tmp_path / "shop", Path("..") / "data")
    _resolve(project)
    m = _with_truth(_map(project), data)
    spoiled = m[m.source_id.isin(crm.CustomerNo[rows])]
    # Those 40 records belong to 40 people and stay with 40 different customers.
    assert spoiled.person_id.nunique() == 40 and spoiled.customer_id.nunique() == 40
    found = pd.DataFrame(
        query(project, "SELECT field, value, reason FROM identity.non_keys"),
        columns=["field", "value", "reason"],
    )
    assert "test@test.com" in set(found.value)
    assert (found[found.value == "test@test.com"].reason == "placeholder").all()


def test_a_source_without_identifying_fields_fails_clearly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    (data / "cards.csv").write_text("card,town\nK1,Leeds\nK2,York\n")
    project = tmp_path / "shop"
    cfg = ProjectConfig.model_validate(
        {
            "sources": {
                "cards": {
                    "contract": "customers",
                    "path": "../data/cards.csv",
                    "columns": {"source_id": "card", "city": "town"},
                }
            }
        }
    )
    init_project(project, cfg)
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "--project", str(project)]).exit_code == 0
    result = runner.invoke(app, ["identity", "resolve", "--project", str(project)])
    assert result.exit_code == 1
    assert "source 'cards'" in result.output and "identifying fields" in result.output


def test_records_with_nothing_to_match_get_their_own_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    (data / "people.csv").write_text(
        "id,first,last,mail\n"
        "A1,Ann,Lee,ann.lee@example.org\nA2,Ann,Lee,ann.lee@example.org\n"
        "A3,,,\nA4,,,\n"
    )
    cfg = ProjectConfig.model_validate(
        {
            "identity": {"probabilistic": False},
            "sources": {
                "people": {
                    "contract": "customers",
                    "path": "../data/people.csv",
                    "columns": {
                        "source_id": "id",
                        "first_name": "first",
                        "last_name": "last",
                        "email": "mail",
                    },
                }
            },
        }
    )
    project = tmp_path / "shop"
    init_project(project, cfg)
    summary = _resolve(project)
    assert summary["empty_records"] == 2 and summary["customers"] == 3
    ids = dict(query(project, "SELECT source_id, customer_id FROM identity.customer_map"))
    assert ids["A1"] == ids["A2"] and len({ids["A1"], ids["A3"], ids["A4"]}) == 3
    with Project.open(project) as proj:
        assert proj.status()  # the project still opens and reports


def test_cookies_are_stitched_to_the_customers_who_log_in(tmp_path: Path) -> None:
    data = tmp_path / "data"
    simulate(data, SimulationConfig(customers=1500, seed=24))
    sources = {
        k: v
        for k, v in simulation_sources("../data").items()
        if v.contract in ("customers", "web_events")
    }
    project = tmp_path / "shop"
    init_project(project, ProjectConfig(name="web", sources=sources))
    summary = _resolve(project)
    cols = ["anonymous_id", "customer_id", "status", "events", "logged_in_events"]
    found = pd.DataFrame(
        query(project, f"SELECT {', '.join(cols)} FROM identity.devices"), columns=cols
    )
    cookies = pd.read_parquet(data / "truth" / "cookies.parquet")
    assert set(found.anonymous_id) == set(cookies.anonymous_id)
    assert summary["devices"]["stitched"] == int((found.status == "stitched").sum()) > 300
    # A stitched cookie belongs to the customer of its true owner.
    m = _with_truth(_map(project), data)
    owner_person = m.groupby("customer_id").person_id.agg(lambda s: s.mode()[0])
    stitched = found[found.status == "stitched"].merge(cookies, on="anonymous_id")
    right = stitched.customer_id.map(owner_person) == stitched.person_id
    assert right.mean() >= 0.99
    # Every cookie that ever logged in is stitched (one person per cookie here), and its
    # anonymous events come with it.
    logged = found[found.logged_in_events > 0]
    assert (logged.status == "stitched").all()
    assert (stitched.events > stitched.logged_in_events).mean() > 0.3
    assert (found[found.logged_in_events == 0].status == "anonymous").all()


def test_a_device_shared_by_two_customers_is_a_conflict() -> None:
    import ibis

    from custintel.identity.stitch import devices

    ts = pd.Timestamp("2025-01-01", tz="UTC")
    web = ibis.memtable(
        pd.DataFrame(
            {
                "anonymous_id": ["tablet", "tablet", "tablet", "phone", "phone", "laptop"],
                "customer_ref": ["W1", "W2", None, None, "W1", None],
                "source": ["webshop"] * 6,
                "event_ts": [ts + pd.Timedelta(minutes=i) for i in range(6)],
            }
        )
    )
    cmap = ibis.memtable(
        pd.DataFrame(
            {"source": ["webshop", "webshop"], "source_id": ["W1", "W2"], "customer_id": ["A", "B"]}
        )
    )
    out = ibis.duckdb.connect().execute(devices(web, cmap)).set_index("anonymous_id")
    assert out.loc["tablet", "status"] == "conflict" and pd.isna(out.loc["tablet", "customer_id"])
    assert out.loc["tablet", "customers"] == 2
    assert out.loc["phone", "status"] == "stitched" and out.loc["phone", "customer_id"] == "A"
    assert out.loc["phone", "events"] == 2 and out.loc["phone", "logged_in_events"] == 1
    assert out.loc["laptop", "status"] == "anonymous"
