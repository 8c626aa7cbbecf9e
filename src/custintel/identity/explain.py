"""Why two profiles are, or are not, one customer.

For any pair of records (linked or not) this replays what a resolve does with them:
each deterministic rule, then the saved Splink model's score with every comparison's
level and its part of the match weight, then the household guard and the threshold.
Works on the stored normalised records (``identity.records``) with the project's
placeholder and shared values blanked, exactly as the linking saw them.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pandas as pd

from custintel.core.config import IdentityConfig
from custintel.identity import keys, linkage, rules


def level_labels(settings: dict[str, Any]) -> dict[str, dict[int, str]]:
    """For each comparison, the chart label of each level by its gamma value."""
    out: dict[str, dict[int, str]] = {}
    for comparison in settings["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        labels = {
            len(levels) - 1 - i: lv.get("label_for_charts", "") for i, lv in enumerate(levels)
        }
        labels[-1] = "missing on one side"
        out[comparison["output_column_name"]] = labels
    return out


def explain_pair(
    pair: pd.DataFrame,
    non_keys: pd.DataFrame,
    model: str | None,
    cfg: IdentityConfig,
    frequency: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The rules and the comparisons for the two normalised records in ``pair``.

    ``frequency``: for each term-frequency column of the model (see
    ``linkage.tf_columns``), the share of all records holding each of the pair's values;
    Splink's e-mail comparison weighs a common address less."""
    usable = keys.blank_non_keys(pair, non_keys).reset_index(drop=True)
    usable["rid"] = [0, 1]
    con = duckdb.connect()
    con.register("records", usable)
    matched = [r.name for r in cfg.rules if len(rules.rule_links(con, "records", r))]
    blanked = [
        {"field": f, "value": str(pair[f].iloc[i])}
        for f in keys.CHECKED
        for i in range(2)
        if pd.notna(pair[f].iloc[i]) and pd.isna(usable[f].iloc[i])
    ]
    out: dict[str, Any] = {
        "rules": matched,
        "set_aside": [dict(t) for t in {tuple(b.items()) for b in blanked}],
        "threshold_match_weight": cfg.threshold_match_weight,
    }
    if model is None:
        out["probabilistic"] = None
        out["decision"] = f"linked by rule {matched[0]}" if matched else "not linked: no rule holds"
        return out
    settings = json.loads(model)
    records = usable[list(linkage.COLUMNS)].astype(object).where(usable.notna(), None)
    rows = records.to_dict("records")
    for column in linkage.tf_columns(settings):
        share = (frequency or {}).get(column, {})
        for row in rows:
            row[f"tf_{column}"] = share.get(row[column]) if row[column] else None
    linker = linkage.scorer(usable.iloc[:0], model)
    scored = linker.inference.score_pair(rows[0], rows[1], include_found_by_blocking_rules=True)
    scored = scored.as_pandas_dataframe().iloc[0]
    labels = level_labels(settings)
    parts = []
    for c in [comparison["output_column_name"] for comparison in settings["comparisons"]]:
        gamma = int(scored[f"gamma_{c}"])
        # Splink's own part of the weight (mw_*), with its term-frequency adjustment.
        weight = float(scored[f"mw_{c}"]) + float(scored.get(f"mw_tf_adj_{c}", 0.0) or 0.0)
        parts.append(
            {
                "comparison": c,
                "left": rows[0][c],
                "right": rows[1][c],
                "level": labels.get(c, {}).get(gamma, str(gamma)),
                "match_weight": round(weight, 2),
            }
        )
    weight = float(scored["match_weight"])
    guard = bool(linkage.incompatible_household(scored.to_frame().T).iloc[0])
    out["probabilistic"] = {
        "match_weight": round(weight, 2),
        "match_probability": round(float(scored["match_probability"]), 4),
        "prior": round(weight - sum(p["match_weight"] or 0.0 for p in parts), 2),
        "comparisons": parts,
        "household_guard": guard,
        "compared": bool(scored["found_by_blocking_rules"]),
    }
    if matched:
        decision = f"linked by rule {matched[0]}"
    elif guard:
        decision = "not linked: first names of two different people (household guard)"
    elif weight >= cfg.threshold_match_weight and not scored["found_by_blocking_rules"]:
        decision = "not compared: no blocking rule puts the two in one block"
    elif weight >= cfg.threshold_match_weight:
        decision = f"linked: match weight {weight:.1f} >= {cfg.threshold_match_weight}"
    else:
        decision = f"not linked: match weight {weight:.1f} < {cfg.threshold_match_weight}"
    out["decision"] = decision
    return out
