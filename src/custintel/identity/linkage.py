"""Probabilistic linking with Splink, set up for customer profiles.

Splink (Fellegi-Sunter) scores each candidate pair from how its fields agree. Which
fields are compared, blocked and trained on comes from the data (``plan.py``); how each
is compared is chosen for customer data: first names through nicknames, catching swapped
names, surnames, towns and addresses through Jaro-Winkler, e-mails through the mailbox,
phones in E.164, birth dates tolerating a swapped day and month, id numbers tolerating
one slipped digit. u is estimated from random pairs, m by expectation maximisation on
the plan's training rules, as Splink recommends; a comparison no rule could train keeps
documented default m-probabilities. Splink gets its own DuckDB connection.

One guard is added after scoring: two records whose first names cannot be the same
person's are never linked unless their national ids agree, however much else they share
(address, surname, landline, a family e-mail, even a birth date: twins), because that is
exactly what members of one household look like.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.internals.comparison_creator import ComparisonCreator
from splink.internals.exceptions import SplinkException
from splink.internals.splink_dataframe import SplinkDataFrame

from custintel.core.config import IdentityConfig
from custintel.identity import plan

NICKNAME_SQL = (
    "list_contains(string_split(name_group_r, ' '), first_name_l) "
    "OR list_contains(string_split(name_group_l, ' '), first_name_r)"
)
SWAPPED_SQL = "first_name_l = last_name_r AND last_name_l = first_name_r"
COMPARED = plan.COMPARABLE
"""Every comparison there may be (a project uses those its plan chose)."""
COLUMNS = ("rid", "name_group", *COMPARED)
EXACT_M, PARTIAL_M, ELSE_M = 0.9, 0.07, 0.03
"""Default m-probabilities, kept where EM cannot estimate a comparison: exact agreement
0.9, the partial levels sharing 0.07, disagreement 0.03 (Splink's own documentation
suggests similar starting values)."""
DEFAULT_PRIOR = 1e-4
"""Prior used when no strong identifier gives pairs to estimate it from."""


def _first_name() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="first_name",
        comparison_levels=[
            cll.NullLevel("first_name"),
            cll.ExactMatchLevel("first_name"),
            cll.CustomLevel(NICKNAME_SQL, label_for_charts="nickname of each other"),
            cll.CustomLevel(SWAPPED_SQL, label_for_charts="first and last name swapped"),
            cll.JaroWinklerLevel("first_name", 0.9),
            cll.ElseLevel(),
        ],
    )


def comparison(name: str) -> ComparisonCreator:
    """The comparison of one field, with the default m-probabilities."""
    made: ComparisonCreator
    if name == "first_name":
        made = _first_name()
    elif name in ("last_name", "city"):
        made = cl.JaroWinklerAtThresholds(name, [0.95, 0.88])
    elif name == "email":
        made = cl.EmailComparison("email")
    elif name == "birth_date":
        made = cl.DateOfBirthComparison("birth_date", input_is_string=True)
    elif name == "address":
        made = cl.JaroWinklerAtThresholds("address", [0.95])
    elif name in ("national_id", "account_number", "loyalty_id"):
        # One slipped or swapped digit is a typo of the same number.
        made = cl.DamerauLevenshteinAtThresholds(name, [1])
    else:
        made = cl.ExactMatch(name)
    levels = made.num_non_null_levels
    partial = [PARTIAL_M / (levels - 2)] * (levels - 2) if levels > 2 else []
    return made.configure(m_probabilities=[EXACT_M, *partial, ELSE_M])


def settings(chosen: plan.LinkPlan) -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="rid",
        probability_two_random_records_match=DEFAULT_PRIOR,
        blocking_rules_to_generate_predictions=[block_on(*plan.sql(r)) for r in chosen.blocking],
        comparisons=[comparison(c) for c in chosen.compared],
        retain_intermediate_calculation_columns=True,
    )


@dataclass
class Training:
    """What training did: the steps that ran, and what fell back to defaults and why."""

    trained: list[str] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def train(
    records: pd.DataFrame, chosen: plan.LinkPlan, cfg: IdentityConfig
) -> tuple[Linker, DuckDBAPI, Training]:
    """A Splink linker over ``records`` with u estimated from random pairs and m by EM on
    the plan's training rules, in order, until every comparison has been estimated
    outside its own rule; a comparison EM never reached keeps the default m."""
    if not chosen.compared:
        raise SplinkException("no field to compare")
    if not chosen.blocking:
        raise SplinkException("no blocking rule fits the fields present")
    db = DuckDBAPI(duckdb.connect())
    frame = records[list(COLUMNS)].copy()
    # Splink reports every training step at INFO; the resolve summary says what matters.
    linker = Linker(db.register(frame), settings(chosen), log_level=logging.ERROR)
    done = Training()
    prior_rules = [block_on(*plan.sql(r)) for r in chosen.prior]
    try:
        if not prior_rules:
            raise SplinkException("no strong identifier to estimate it from")
        linker.training.estimate_probability_two_random_records_match(prior_rules, recall=0.8)
    except SplinkException as exc:
        done.notes.append(f"prior left at its default {DEFAULT_PRIOR:g}: {first_sentence(exc)}")
    linker.training.estimate_u_using_random_sampling(max_pairs=cfg.u_max_pairs, seed=1)
    compared = set(chosen.compared)
    estimated: set[str] = set()
    for rule in chosen.training:
        gain = compared - plan.rule_fields(rule) - estimated
        if not gain and len(done.trained) >= 2:
            continue
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*plan.sql(rule))
            )
        except SplinkException as exc:
            done.notes.append(f"EM on {'+'.join(rule)} failed: {first_sentence(exc)}")
            continue
        done.trained.append("+".join(rule))
        estimated |= compared - plan.rule_fields(rule)
        if estimated == compared and len(done.trained) >= 2:
            break
    done.defaults = [c for c in chosen.compared if c not in estimated]
    if done.defaults:
        done.notes.append(
            f"default m-probabilities kept for {', '.join(done.defaults)} "
            "(no training rule left them free to estimate)"
        )
    return linker, db, done


def first_sentence(exc: Exception) -> str:
    """The first sentence of an error, which is the part that says what went wrong."""
    return str(exc).strip().split("\n")[0].split(". ")[0]


PERSONAL = ("national_id",)
"""Identifiers one person holds alone: their agreement outweighs different first names.
Not the e-mail address: a family often shares one."""


def incompatible_household(pairs: pd.DataFrame) -> pd.Series:
    """Pairs that look like two members of one household: first names that cannot be one
    person's (both known; not equal, not nicknames, not swapped, not a likely typo) and
    no national id agreeing to outweigh that. A shared e-mail or birth date does not: a
    family shares a mailbox, twins a birthday."""
    if "gamma_first_name" not in pairs:
        return pd.Series(False, index=pairs.index)
    different_first = pairs["gamma_first_name"] == 0
    same_key = pd.Series(False, index=pairs.index)
    for key in PERSONAL:
        if f"{key}_l" in pairs:
            same_key |= (pairs[f"{key}_l"] == pairs[f"{key}_r"]).fillna(False).astype(bool)
    return different_first & ~same_key


def probabilistic_links(linker: Linker, cfg: IdentityConfig) -> pd.DataFrame:
    """Pairs at or above the match-weight threshold that pass the household guard."""
    pred = linker.inference.predict(threshold_match_weight=cfg.threshold_match_weight)
    return _accepted(_needed(pred))


def _needed(pred: SplinkDataFrame) -> pd.DataFrame:
    """Only the prediction columns used here: Splink keeps every intermediate column, and
    all of them for a million pairs would double the resolve's peak memory."""
    relation = pred.as_duckdbpyrelation()
    wanted = ["rid_l", "rid_r", "match_weight", "match_probability"]
    wanted += [c for k in PERSONAL for c in (f"{k}_l", f"{k}_r") if c in relation.columns]
    wanted += [c for c in relation.columns if c.startswith(("gamma_", "mw_"))]
    return relation.select(*wanted).df()


def model_json(linker: Linker) -> str:
    """The trained model (settings with m and u), kept so later runs can score new
    records and explain any pair without training again."""
    return json.dumps(linker.misc.save_model_to_json())


def scorer(records: pd.DataFrame, model: str) -> Linker:
    """A linker over ``records`` with a saved model, ready to score (no training)."""
    db = DuckDBAPI(duckdb.connect())
    frame = records[list(COLUMNS)].copy()
    return Linker(db.register(frame), json.loads(model), log_level=logging.ERROR)


def links_to_new(
    records: pd.DataFrame, new: pd.Series, model: str, cfg: IdentityConfig
) -> pd.DataFrame:
    """Probabilistic links of the ``new`` records (a mask over ``records``) with every
    record, scored by the saved model: new against the rest, and new among themselves.
    Only the new records' blocks are compared, so the cost follows their number."""
    db = DuckDBAPI(duckdb.connect())
    frame = records[list(COLUMNS)]
    rest = db.register(frame[~new.to_numpy()].copy(), table_name="rest")
    fresh = db.register(frame[new.to_numpy()].copy(), table_name="fresh")
    settings = json.loads(model)
    linker = Linker(fresh, settings, log_level=logging.ERROR)
    # Term frequencies (how common each e-mail is) come from all records, as in a full
    # run; Splink would otherwise need them precomputed.
    for column in tf_columns(settings):
        share = frame[column].value_counts(normalize=True)
        table = pd.DataFrame({column: share.index.astype(str), f"tf_{column}": share.to_numpy()})
        linker.table_management.register_term_frequency_lookup(
            db.register(table, table_name=f"tf_{column}"), column
        )
    found = [
        _needed(
            linker.inference.predict_between(
                rest, fresh, threshold_match_weight=cfg.threshold_match_weight, warning_mode="never"
            )
        ),
        _needed(
            linker.inference.predict_within(
                fresh, threshold_match_weight=cfg.threshold_match_weight, warning_mode="never"
            )
        ),
    ]
    pairs = pd.concat([f for f in found if len(f)] or found[:1], ignore_index=True)
    # Splink's sides are roles (rest, new); links are kept with rid_l < rid_r.
    swap = pairs["rid_l"].astype("int64") > pairs["rid_r"].astype("int64")
    sided = [("rid_l", "rid_r")] + [(f"{k}_l", f"{k}_r") for k in PERSONAL if f"{k}_l" in pairs]
    for a, b in sided:
        pairs.loc[swap, [a, b]] = pairs.loc[swap, [b, a]].to_numpy()
    return _accepted(pairs)


def tf_columns(settings: dict) -> set[str]:
    """The columns whose comparison levels adjust for term frequency."""
    return {
        level["tf_adjustment_column"]
        for comparison in settings["comparisons"]
        for level in comparison["comparison_levels"]
        if level.get("tf_adjustment_column")
    }


def _accepted(pairs: pd.DataFrame) -> pd.DataFrame:
    """Scored pairs past the household guard, with each comparison's part of the weight."""
    keep = ~incompatible_household(pairs)
    pairs = pairs[keep]
    out = pd.DataFrame(
        {
            "rid_l": pairs["rid_l"].astype("int64"),
            "rid_r": pairs["rid_r"].astype("int64"),
            "rule": "probabilistic",
            "match_weight": pairs["match_weight"].astype(float),
            "match_probability": pairs["match_probability"].astype(float),
        }
    )
    # Each comparison's part of the match weight as Splink computed it (its level's
    # log2(m/u), plus the term-frequency adjustment for e-mails), and the prior as the
    # rest: what `identity explain` and the report's waterfall show.
    parts = {}
    for c in COMPARED:
        if f"mw_{c}" not in pairs:
            out[f"w_{c}"] = float("nan")
            continue
        weight = pairs[f"mw_{c}"].astype(float).fillna(0.0).to_numpy()
        if f"mw_tf_adj_{c}" in pairs:
            weight = weight + pairs[f"mw_tf_adj_{c}"].astype(float).fillna(0.0).to_numpy()
        parts[c] = weight
        out[f"w_{c}"] = weight
    total = np.sum(list(parts.values()), axis=0) if parts else 0.0
    out["w_prior"] = out["match_weight"].to_numpy() - total
    return out.reset_index(drop=True)
