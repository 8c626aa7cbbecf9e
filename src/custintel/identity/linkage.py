"""Probabilistic linking with Splink, set up for customer profiles.

Splink (Fellegi-Sunter) scores each candidate pair from how its fields agree. The
comparisons are chosen for customer data: first names compare through nicknames and
catch swapped names, surnames and addresses through Jaro-Winkler, e-mails through the
mailbox, phones in E.164, birth dates tolerating a swapped day and month. u is estimated
from random pairs, m by expectation maximisation on two blocking rules, as Splink
recommends. Splink gets its own DuckDB connection.

One guard is added after scoring: two records whose first names cannot be the same
person's are never linked unless their birth dates are identical, however much else they
share (address, surname, even an e-mail address), because that is exactly what members of
one household look like.
"""

from __future__ import annotations

import json
import logging

import duckdb
import numpy as np
import pandas as pd
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.internals.splink_dataframe import SplinkDataFrame

from custintel.core.config import IdentityConfig

NICKNAME_SQL = (
    "list_contains(string_split(name_group_r, ' '), first_name_l) "
    "OR list_contains(string_split(name_group_l, ' '), first_name_r)"
)
SWAPPED_SQL = "first_name_l = last_name_r AND last_name_l = first_name_r"
COMPARED = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "birth_date",
    "postcode",
    "address",
)
"""The comparisons, in the order of the settings (their output column names)."""
COLUMNS = (
    "rid",
    "first_name",
    "last_name",
    "name_group",
    "email",
    "phone",
    "birth_date",
    "postcode",
    "address",
)


def settings() -> SettingsCreator:
    first = cl.CustomComparison(
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
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="rid",
        blocking_rules_to_generate_predictions=[
            block_on("birth_date", "postcode"),
            block_on("email"),
            block_on("phone"),
            block_on("last_name", "postcode", "substr(first_name, 1, 1)"),
        ],
        comparisons=[
            first,
            cl.JaroWinklerAtThresholds("last_name", [0.95, 0.88]),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone"),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("postcode"),
            cl.JaroWinklerAtThresholds("address", [0.95]),
        ],
        retain_intermediate_calculation_columns=True,
    )


def train(records: pd.DataFrame, cfg: IdentityConfig) -> tuple[Linker, DuckDBAPI]:
    """A Splink linker over ``records`` with m and u estimated."""
    db = DuckDBAPI(duckdb.connect())
    frame = records[list(COLUMNS)].copy()
    # Splink reports every training step at INFO; the resolve summary says what matters.
    linker = Linker(db.register(frame), settings(), log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("email"), block_on("phone")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=cfg.u_max_pairs, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("birth_date", "postcode")
    )
    return linker, db


def incompatible_household(pairs: pd.DataFrame) -> pd.Series:
    """Pairs that look like two members of one household: first names that cannot be one
    person's (both known; not equal, not nicknames, not swapped, not a likely typo) and
    no identical birth date to outweigh that."""
    different_first = pairs["gamma_first_name"] == 0
    same_birth = (pairs["birth_date_l"] == pairs["birth_date_r"]).fillna(False)
    return different_first & ~same_birth


def probabilistic_links(linker: Linker, cfg: IdentityConfig) -> pd.DataFrame:
    """Pairs at or above the match-weight threshold that pass the household guard."""
    pred = linker.inference.predict(threshold_match_weight=cfg.threshold_match_weight)
    return _accepted(_needed(pred))


def _needed(pred: SplinkDataFrame) -> pd.DataFrame:
    """Only the prediction columns used here: Splink keeps every intermediate column, and
    all of them for a million pairs would double the resolve's peak memory."""
    wanted = [
        "rid_l",
        "rid_r",
        "match_weight",
        "match_probability",
        "birth_date_l",
        "birth_date_r",
        *(f"gamma_{c}" for c in COMPARED),
        *(f"mw_{c}" for c in COMPARED),
    ]
    relation = pred.as_duckdbpyrelation()
    wanted += [c for c in relation.columns if c.startswith("mw_tf_adj_")]
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
    for a, b in (("rid_l", "rid_r"), ("birth_date_l", "birth_date_r")):
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
        weight = pairs[f"mw_{c}"].astype(float).fillna(0.0).to_numpy()
        if f"mw_tf_adj_{c}" in pairs:
            weight = weight + pairs[f"mw_tf_adj_{c}"].astype(float).fillna(0.0).to_numpy()
        parts[c] = weight
        out[f"w_{c}"] = weight
    out["w_prior"] = out["match_weight"].to_numpy() - np.sum(list(parts.values()), axis=0)
    return out.reset_index(drop=True)
