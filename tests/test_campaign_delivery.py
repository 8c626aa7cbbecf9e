"""Delivery against a real HTTP receiver on loopback: exported files and webhook batches
carry exactly the treated contacts the decision log chose; a receiver that fails and
recovers gets every batch once; a run that fails half-way resumes without sending twice;
a receiver that never answers ends in a one-line error with nothing half-sent."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from custintel.campaigns import holdout
from custintel.campaigns.delivery import normalise_email, normalise_phone
from custintel.cli.main import app
from custintel.core.config import dump_config, load_config, parse_config
from custintel.core.errors import StageError
from custintel.pipeline.project import Project
from tests.receiver import Behaviour, Receiver, receiver

AS_OF = dt.date(2025, 6, 30)

CAMPAIGNS = """
channels:
  email: {{cost: 0.01, webhook: {{url: "{url}", batch_size: 100, backoff_s: 0.01, tries: 3,
                                 timeout_s: 0.5, token_env: CUSTINTEL_TEST_TOKEN}}}}
  sms: {{cost: 0.05, webhook: {{url: "{url}", batch_size: 100, backoff_s: 0.01, tries: 3,
                               timeout_s: 0.5}}}}
  ads: {{cost: 0.02, export: meta_custom_audience}}
offers:
  voucher: {{score: churn_90d, value: 40, channels: [email, sms], cost_per_response: 2}}
  retarget: {{score: churn_90d, value: 25, channels: [ads]}}
campaigns:
  winback:
    offers: [voucher, retarget]
    audience: {{score: churn_90d, deciles: [1, 2, 3, 4, 5, 6]}}
    holdout: 0.2
    actions_per_customer: 2
contact_policy:
  caps: {{all: {{day: 2, week: 3, month: 6}}}}
"""


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture(scope="module")
def project(resolved_shop: Path, tmp_path_factory: pytest.TempPathFactory, hook: Receiver) -> Path:
    """The resolved shop with a stand-in churn score and channels posting to ``hook``."""
    project = tmp_path_factory.mktemp("delivery") / "shop"
    shutil.copytree(resolved_shop, project)
    cfg = load_config(project)
    extra = parse_config(CAMPAIGNS.format(url=hook.url))
    keys = ("channels", "offers", "campaigns", "contact_policy")
    cfg = cfg.model_copy(update={k: getattr(extra, k) for k in keys})
    (project / "custintel.yaml").write_text(dump_config(cfg), encoding="utf-8")
    with Project.open(project) as p:
        ids = p.warehouse.table("customer", "profile").execute().customer_id.sort_values()
        ids = ids.to_numpy()
        score = holdout.units("stand-in model", ids)
        decile = np.empty(len(ids), dtype=int)
        decile[np.argsort(-score, kind="stable")] = np.arange(len(ids)) * 10 // len(ids) + 1
        p.warehouse.ensure_schema("scores")
        p.warehouse.put("scores", "churn_90d", pd.DataFrame({
            "customer_id": ids, "as_of": AS_OF, "score": score, "decile": decile,
            "tier": np.where(decile <= 3, "high", "medium"), "reasons": "[]",
            "model_version": 1,
        }))  # fmt: skip
    return project


def _table(project: Path, name: str) -> pd.DataFrame:
    with Project.open(project, read_only=True) as p:
        return p.warehouse.table("campaign", name).execute()


def _posted(requests: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {**c, "channel": r["body"]["channel"], "key": r["key"]}
        for r in requests
        for c in r["body"]["contacts"]
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def delivered(project: Path, hook: Receiver) -> dict[str, Any]:
    """A first run whose receiver fails each batch's first try with a 503 (Retry-After 0),
    then a second run on the same date."""
    import os

    os.environ["CUSTINTEL_TEST_TOKEN"] = "test-token"
    hook.reset(Behaviour(status=503, fail_from=1, fail_until=2, retry_after="0"))
    with Project.open(project) as p:
        first = p.campaign_run("winback", AS_OF)
    requests = list(hook.requests)
    hook.reset()
    with Project.open(project) as p:
        again = p.campaign_run("winback", AS_OF)
    return {"first": first, "again": again, "requests": requests,
            "second_requests": list(hook.requests)}  # fmt: skip


def test_files_and_webhooks_carry_exactly_the_treated(
    project: Path, delivered: dict[str, Any]
) -> None:
    d = _table(project, "decisions")
    treated = d[d.outcome == "treatment"]
    posted = _posted([r for r in delivered["requests"] if r["answer"] == 200])
    for channel in ("email", "sms"):
        want = set(treated.loc[treated.channel == channel, "customer_id"])
        got = posted.loc[posted.channel == channel, "customer_id"]
        assert len(want) > 50
        assert got.is_unique and set(got) == want, channel
    # the platform files: the e-mail import holds the treated e-mail contacts ...
    info = delivered["first"]["delivery"]
    email = pd.read_csv(project / info["email"]["file"]["path"], dtype=str)
    assert list(email.columns[:3]) == ["Email Address", "First Name", "Last Name"]
    assert set(email.customer_id) == set(treated.loc[treated.channel == "email", "customer_id"])
    # ... and the ad audience only hashes, which match the treated customers' own
    ads = pd.read_csv(project / info["ads"]["file"]["path"], dtype=str, keep_default_na=False)
    assert list(ads.columns) == ["email", "phone"]
    with Project.open(project, read_only=True) as p:
        profile = p.warehouse.table("customer", "profile").execute().set_index("customer_id")
    who = treated.loc[treated.channel == "ads", "customer_id"]
    assert len(ads) == len(who) > 50
    mails = normalise_email(profile.email.reindex(who)).dropna()
    hashed = {hashlib.sha256(m.encode()).hexdigest() for m in mails}
    assert set(ads.email[ads.email != ""]) == hashed
    phones = normalise_phone(profile.phone.reindex(who), "GB", plus=False).dropna()
    assert set(ads.phone[ads.phone != ""]) == {
        hashlib.sha256(v.encode()).hexdigest() for v in phones
    }
    assert not ads.email.str.contains("@").any()
    # nobody held out or excluded left the warehouse
    left = set(posted.customer_id) | set(email.customer_id)
    assert not left & set(d.loc[d.outcome == "control", "customer_id"])
    assert left <= set(treated.customer_id)


def test_a_receiver_that_fails_then_recovers_gets_each_batch_once(
    project: Path, delivered: dict[str, Any]
) -> None:
    requests = delivered["requests"]
    assert [r["answer"] for r in requests[:3]] == [503, 503, 200]
    accepted = [r["key"] for r in requests if r["answer"] == 200]
    assert len(accepted) == len(set(accepted))  # never twice
    assert all(
        r["auth"] == "Bearer test-token" for r in requests if r["body"]["channel"] == "email"
    )
    log = _table(project, "deliveries")
    hooks = log[log.kind == "webhook"]
    assert (hooks.status == "sent").all()
    assert hooks.attempts.max() == 3  # two refusals, then the third try of the first batch
    assert set(hooks.key) == set(accepted)
    # the second run on the same date made the same decisions: nothing was sent again
    assert delivered["second_requests"] == []
    w = delivered["again"]["delivery"]["email"]["webhook"]
    assert w["sent"] == 0 and w["already_sent"] == w["batches"] > 1


def test_a_run_failing_half_way_resumes_without_sending_twice(
    project: Path, hook: Receiver, tmp_path: Path, runner: Any
) -> None:
    copy = tmp_path / "shop"
    shutil.copytree(project, copy)
    with Project.open(copy) as p:  # a fresh history of what was delivered
        p.warehouse.sql("DELETE FROM campaign.deliveries")
    hook.reset(Behaviour(status=500, fail_from=3))  # two batches, then down
    with Project.open(copy) as p, pytest.raises(StageError) as err:
        p.campaign_run("winback", AS_OF)
    message = str(err.value)
    assert "\n" not in message
    assert "failed at batch 3" in message and "2 delivered" in message
    assert f"custintel campaign deliver winback --as-of {AS_OF}" in message
    assert len(_table(copy, "decisions")) > 0  # the decisions stand
    first = [r["key"] for r in hook.accepted]
    assert len(first) == 2
    hook.reset()  # back up
    out = runner.invoke(app, ["campaign", "deliver", "winback", "--project", str(copy),
                              "--as-of", str(AS_OF), "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    second = [r["key"] for r in hook.accepted]
    assert not set(first) & set(second)
    d = _table(copy, "decisions")
    posted = _posted([r for r in hook.accepted])
    everyone = set(d.loc[(d.outcome == "treatment") & d.channel.isin(["email", "sms"]),
                         "customer_id"])  # fmt: skip
    email_sms_first = 2 * 100  # the two batches accepted before the failure
    assert len(posted) + email_sms_first == len(
        d[(d.outcome == "treatment") & d.channel.isin(["email", "sms"])]
    )
    assert set(posted.customer_id) < everyone


def test_a_receiver_that_never_answers_is_a_one_line_error(
    project: Path, hook: Receiver, tmp_path: Path
) -> None:
    copy = tmp_path / "shop"
    shutil.copytree(project, copy)
    with Project.open(copy) as p:
        p.warehouse.sql("DELETE FROM campaign.deliveries")
    hook.reset(Behaviour(status=200, fail_from=1, stall_s=1.5))
    with Project.open(copy) as p, pytest.raises(StageError, match=r"no answer within 0.5 s"):
        p.campaign_deliver("winback", AS_OF)
    log = _table(copy, "deliveries")
    hooks = log[log.kind == "webhook"]
    # each channel stopped at its first batch, tried three times; nothing later was sent
    assert sorted(hooks.channel) == ["email", "sms"]
    assert (hooks.status == "failed").all() and (hooks.attempts == 3).all()
    assert (hooks.batch == 1).all()
    hook.reset()
