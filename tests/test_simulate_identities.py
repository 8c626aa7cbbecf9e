"""Identities and noisy source records against the rates and structure they claim."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from custintel.simulate.identities import NICKNAMES, Noise, draw_identities, source_records
from custintel.simulate.population import draw_people


def _make(seed: int, n: int = 30_000):
    rng = np.random.default_rng(seed)
    people = draw_people(n, rng)
    identities = draw_identities(people, rng)
    records, truth = source_records(identities, rng)
    return identities, records, truth


@pytest.fixture(scope="module")
def made():
    return _make(21)


def test_deterministic() -> None:
    a, b = _make(4, 3000), _make(4, 3000)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[2], b[2])
    for system in a[1]:
        pd.testing.assert_frame_equal(a[1][system], b[1][system])


def test_truth_covers_every_record_and_every_person(made) -> None:
    identities, records, truth = made
    assert len(truth) == sum(len(r) for r in records.values())
    assert truth.source_id.is_unique
    assert set(truth.person_id) == set(identities.person_id)
    for system, frame in records.items():
        assert set(frame.source_id) == set(truth[truth.system == system].source_id)


def test_noise_rates_match_the_knobs(made) -> None:
    identities, _, truth = made
    flags = truth.noise.str.get_dummies(sep=",")
    n = len(truth)
    nick_share = (
        identities.set_index("person_id").first_name.isin(list(NICKNAMES))[truth.person_id].mean()
    )
    births = identities.set_index("person_id").birth_date[truth.person_id].str.split("-")
    day, month = births.str[2].astype(int), births.str[1].astype(int)
    swappable = ((day <= 12) & (day != month)).mean()
    possible = {"nickname": nick_share, "birth_date_swapped": swappable}
    for f in fields(Noise):
        rate = flags[f.name].sum() / n if f.name in flags else 0.0
        expected = getattr(Noise(), f.name) * possible.get(f.name, 1.0)
        if f.name == "duplicate_account":
            expected = expected / (1 + expected)  # duplicates are extra records
        assert abs(rate - expected) < 0.006, (f.name, rate, expected)


def test_noise_is_really_applied(made) -> None:
    identities, records, truth = made
    frame = pd.concat(records.values(), ignore_index=True).merge(truth, on="source_id")
    true = identities.set_index("person_id").loc[frame.person_id].reset_index()
    clean = frame.noise == ""
    assert (frame.first_name[clean].to_numpy() == true.first_name[clean].to_numpy()).all()
    assert (frame.email[clean].to_numpy() == true.email[clean].to_numpy()).all()
    typo = frame.noise.str.contains("typo") & ~frame.noise.str.contains("swapped|case")
    assert (frame.last_name[typo].to_numpy() != true.last_name[typo].to_numpy()).all()
    missing = frame.noise.str.contains("missing_email")
    assert (frame.email[missing] == "").all()
    moved = frame.noise.str.contains("moved")
    assert (frame.address[moved].to_numpy() != true.address[moved].to_numpy()).mean() > 0.95
    national = frame.noise.str.contains("phone_format") & ~frame.noise.str.contains("missing_phone")
    assert frame.phone[national].str.startswith("07").all()
    swapped = frame.noise.str.contains("birth_date_swapped")
    assert swapped.any()
    assert (frame.birth_date[swapped].to_numpy() != true.birth_date[swapped].to_numpy()).all()
    dup = truth[truth.noise.str.contains("duplicate_account")]
    counts = truth.groupby(["system", "person_id"]).size()
    assert (counts.loc[list(zip(dup.system, dup.person_id, strict=True))] >= 2).all()


def test_households_are_hard_negatives(made) -> None:
    identities = made[0]
    shared = identities[identities.household_id != identities.person_id]
    assert 0.15 < len(shared) / len(identities) < 0.25
    host = identities.set_index("person_id").loc[shared.household_id]
    for col in ("last_name", "address", "postcode", "city", "landline"):
        assert (shared[col].to_numpy() == host[col].to_numpy()).all(), col
    assert (shared.first_name.to_numpy() != host.first_name.to_numpy()).all()
    # Members have their own e-mail, except those who share the household's address.
    own = ~shared.shares_email.to_numpy()
    assert (shared.email.to_numpy()[own] != host.email.to_numpy()[own]).all()
    assert (shared.email.to_numpy()[~own] == host.email.to_numpy()[~own]).all()
    assert 0.15 < (~own).mean() < 0.35
    assert not identities.duplicated(["household_id", "first_name"]).any()
