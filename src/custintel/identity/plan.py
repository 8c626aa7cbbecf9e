"""What the probabilistic linking compares, blocks on and trains on, chosen from the data.

A project's profiles carry whatever its sources hold: e-mail and phone, or only names,
an address, a birth date and a national id. Comparisons, blocking rules and the rules EM
trains on are therefore chosen from the identifying fields the records really have:

- a field is **compared** when enough records hold it (``identity.min_fill``) and it has
  more than one value; of the location fields only the finest (postcode, else city,
  else region) is, as they all move together;
- a **blocking rule** is used when all its fields are compared and it would not create
  more than ``identity.max_block_pairs`` candidate pairs per record (a state or city
  alone would pair everyone with everyone);
- **EM training** runs on the usable blocking rules, those whose pairs are rarely two
  members of one household first (e-mail, national id, birth date with postcode or
  surname), until every comparison has been estimated outside its own rule at least once;
- the **prior** (how likely two random records match) is estimated from the strong
  identifiers present.

Settings (``identity.comparisons``, ``identity.blocking_rules``,
``identity.training_rules``) replace any of these choices. Every choice and every field
left out is written down with its reason (:class:`LinkPlan.notes`), for the plain output,
the report and ``identity explain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

import pandas as pd

from custintel.core.config import ComparedField, IdentityConfig

INITIAL = "first_initial"
"""Pseudo-field of blocking rules: the first letter of the first name."""
COMPARABLE: tuple[str, ...] = get_args(ComparedField)
"""Every field a comparison exists for, in the order of the settings."""
BLOCKING = (
    ("email",),
    ("national_id",),
    ("phone",),
    ("account_number",),
    ("loyalty_id",),
    ("birth_date", "postcode"),
    ("birth_date", "last_name"),
    ("last_name", "postcode", INITIAL),
    ("address", INITIAL),
    ("birth_date", "first_name"),
    ("first_name", "last_name", "city"),
    ("first_name", "last_name", "region"),
)
"""Candidate blocking rules, strongest first."""
TRAINING_FIRST = (
    ("email",),
    ("national_id",),
    ("birth_date", "postcode"),
    ("birth_date", "last_name"),
)
"""Rules EM learns best from, tried first: few of their pairs are two members of one
household (a landline or an address is shared by a whole family)."""
PRIOR_RULES = (("email",), ("national_id",), ("first_name", "last_name", "birth_date"))
"""Rules whose pairs are nearly all matches: the prior is estimated from them."""
MIN_TRAINING_PAIRS = 50
"""A training rule with fewer candidate pairs than this teaches EM nothing."""


@dataclass
class FieldProfile:
    """How much of a field the records hold."""

    name: str
    filled: float
    distinct: int


@dataclass
class LinkPlan:
    """The comparisons, blocking rules, training rules and prior rules of one resolve."""

    compared: list[str]
    blocking: list[tuple[str, ...]]
    training: list[tuple[str, ...]]
    prior: list[tuple[str, ...]]
    pairs: dict[tuple[str, ...], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "compared": self.compared,
            "blocking": [list(r) for r in self.blocking],
            "training": [list(r) for r in self.training],
            "prior": [list(r) for r in self.prior],
            "notes": self.notes,
        }


def profile(records: pd.DataFrame) -> dict[str, FieldProfile]:
    """Fill rate and number of distinct values of every comparable field."""
    n = max(len(records), 1)
    out = {}
    for name in COMPARABLE:
        values = records[name] if name in records else pd.Series(dtype="string")
        out[name] = FieldProfile(name, float(values.notna().sum()) / n, int(values.nunique()))
    return out


def rule_fields(rule: tuple[str, ...]) -> set[str]:
    """The comparable fields a rule uses (the initial is the first name's)."""
    return {"first_name" if f == INITIAL else f for f in rule}


def candidate_pairs(records: pd.DataFrame, rule: tuple[str, ...]) -> int:
    """Pairs a blocking rule would create: the sum over its blocks of n(n-1)/2."""
    frame = pd.DataFrame(
        {f: records["first_name"].str[:1] if f == INITIAL else records[f] for f in rule}
    ).dropna()
    if frame.empty:
        return 0
    sizes = frame.groupby(list(frame.columns), sort=False, observed=True).size()
    return int((sizes * (sizes - 1) // 2).sum())


def choose(records: pd.DataFrame, cfg: IdentityConfig) -> LinkPlan:
    """The plan for ``records`` (normalised, placeholders blanked) under ``cfg``."""
    fields = profile(records)
    notes: list[str] = []
    if cfg.comparisons is not None:
        compared = [f for f in COMPARABLE if f in cfg.comparisons]
        notes.append(f"comparisons set in the configuration: {', '.join(compared)}")
    else:
        compared = []
        for name, p in fields.items():
            if p.filled == 0:
                continue
            if p.filled < cfg.min_fill:
                notes.append(
                    f"{name} not compared: held by {p.filled:.1%} of profiles "
                    f"(fewer than min_fill {cfg.min_fill:.0%})"
                )
            elif p.distinct < 2:
                notes.append(f"{name} not compared: every profile holds the same value")
            else:
                compared.append(name)
        compared = _finest_place(compared, notes)
        absent = [n for n, p in fields.items() if p.filled == 0]
        if absent:
            notes.append(f"not in the data: {', '.join(absent)}")
    pairs: dict[tuple[str, ...], int] = {}
    if cfg.blocking_rules is not None:
        blocking = [tuple(r) for r in cfg.blocking_rules]
        for rule in blocking:
            pairs[rule] = candidate_pairs(records, rule)
        notes.append("blocking rules set in the configuration")
    else:
        limit = cfg.max_block_pairs * max(len(records), 1)
        blocking = []
        for rule in BLOCKING:
            if rule_fields(rule) - set(compared):
                continue
            pairs[rule] = candidate_pairs(records, rule)
            if pairs[rule] > limit:
                notes.append(
                    f"blocking rule {'+'.join(rule)} left out: {pairs[rule]:,} candidate pairs "
                    f"(more than {cfg.max_block_pairs:g} per profile)"
                )
            else:
                blocking.append(rule)
    if cfg.training_rules is not None:
        training = [tuple(r) for r in cfg.training_rules]
        for rule in training:
            pairs.setdefault(rule, candidate_pairs(records, rule))
        notes.append("training rules set in the configuration")
    else:
        training = []
        ordered = [r for r in TRAINING_FIRST if r in blocking]
        for rule in ordered + [r for r in blocking if r not in ordered]:
            if pairs.get(rule, 0) < MIN_TRAINING_PAIRS:
                notes.append(
                    f"no EM training on {'+'.join(rule)}: {pairs.get(rule, 0)} candidate pairs "
                    f"(fewer than {MIN_TRAINING_PAIRS})"
                )
                continue
            training.append(rule)
    prior = [r for r in PRIOR_RULES if not rule_fields(r) - set(compared)]
    return LinkPlan(compared, blocking, training, prior, pairs, notes)


PLACES = ("postcode", "city", "region")
"""Location fields from finest to coarsest."""


def _finest_place(compared: list[str], notes: list[str]) -> list[str]:
    """Only the finest location field is compared: a postcode already says the town and
    the state, and comparing all three would count one move three times (Fellegi-Sunter
    takes fields as independent), enough to lose a person who moved."""
    present = [p for p in PLACES if p in compared]
    for coarser in present[1:]:
        notes.append(f"{coarser} not compared: {present[0]} says the same, more finely")
    return [c for c in compared if c not in present[1:]]


def sql(rule: tuple[str, ...]) -> list[str]:
    """The column expressions of a rule, as Splink's ``block_on`` takes them."""
    return ["substr(first_name, 1, 1)" if f == INITIAL else f for f in rule]
