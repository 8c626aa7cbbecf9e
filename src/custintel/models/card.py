"""A model card per registered version, in Markdown and in HTML.

One structure of sections (paragraphs, lists and tables) is rendered twice, so the two
files always say the same thing. The card states what the model is for, what it learned
from, how it did out of time against the gates, what drives it, and what it cannot be
trusted for, all from the training summary; nothing on it is typed by hand.
"""

from __future__ import annotations

import html
from typing import Any

Block = tuple[str, Any]  # ("p", text) | ("list", [text]) | ("table", (columns, rows))

HEADLINE = ("auc", "pr_auc", "ks", "brier", "ece", "top_decile_lift")
WORDS = {
    "auc": "AUC",
    "pr_auc": "PR AUC",
    "ks": "KS",
    "brier": "Brier score",
    "ece": "Expected calibration error",
    "top_decile_lift": "Top-decile lift",
}


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def sections(entry: dict[str, Any], s: dict[str, Any], gates: dict[str, float]) -> list[Any]:
    """The card's content: (title, blocks) per section."""
    name, version = entry["name"], entry["version"]
    split = s.get("split", {})
    crossfitted = split.get("kind") == "crossfit"
    own = "table" in s
    rows = s.get("rows", {})
    test = s.get("test", {})
    out: list[Any] = []
    table_note = f" from the table {s['table']}, target `{s['target']}`" if s.get("table") else ""
    out.append(
        (
            "Model details",
            [
                (
                    "list",
                    [
                        f"Name and version: {name} v{version}; created {entry['created_at']}",
                        f"Algorithm: {s.get('algorithm')} ({s.get('chosen_because', '')}), "
                        f"{s.get('calibration')} calibration",
                        f"Feature set: {entry['feature_set']} version {entry['feature_set_version']}"
                        f" ({len(s.get('features', []))} features){table_note}",
                        f"Training data hash: {entry['data_hash']}",
                        "Artefacts: model.joblib (native)"
                        + (
                            f", model.onnx (largest difference from native "
                            f"{s['onnx']['max_abs_difference']:.1e} on "
                            f"{s['onnx']['parity_rows']:,} test rows)"
                            if s.get("onnx", {}).get("available")
                            else f"; no ONNX graph: {s.get('onnx', {}).get('reason', 'not exported')}"
                        ),
                    ],
                )
            ],
        )
    )
    out.append(
        (
            "Intended use",
            [
                (
                    "p",
                    f"Scores rows of the same schema as `{s.get('table')}` with the "
                    f"probability of `{name}` (`custintel score {name} --table FILE`), to "
                    "rank them and to size a campaign with the threshold table."
                    if own
                    else f"Scores each eligible customer with the probability of `{name}` as "
                    "of a snapshot date, to rank customers for a campaign and to size it with "
                    "the threshold table. Scores are comparable across customers of one "
                    "date; customers who opted out of profiling are never scored.",
                )
            ],
        )
    )
    out.append(
        (
            "Training and evaluation data",
            [
                (
                    "table",
                    (
                        ["part", "rows used", "rows"],
                        [
                            ["training", ", ".join(split.get("train", [])), rows.get("train")],
                            [
                                "choices and calibration",
                                split.get("validation"),
                                rows.get("train"),
                            ],
                            ["estimate", split.get("test"), rows.get("test")],
                        ],
                    )
                    if crossfitted
                    else (
                        ["part", "snapshots", "rows"],
                        [
                            ["training", ", ".join(split.get("train", [])), rows.get("train")],
                            [
                                "early stopping and tuning",
                                split.get("validation"),
                                rows.get("early_stopping"),
                            ],
                            [
                                "calibration and choice",
                                split.get("validation"),
                                rows.get("calibration"),
                            ],
                            ["out-of-time test", split.get("test"), rows.get("test")],
                        ],
                    ),
                ),
                (
                    "p",
                    f"Positive rate: {_num(test.get('positive_rate'), 3)}."
                    if crossfitted
                    else f"Positive rate in the test snapshot: "
                    f"{_num(test.get('positive_rate'), 3)}.",
                ),
            ],
        )
    )
    gate_rows = []
    for metric in HEADLINE:
        least = gates.get(metric)
        value = test.get(metric)
        verdict = "-" if least is None else ("meets" if (value or 0) >= least else "fails")
        gate_rows.append([WORDS[metric], _num(value), _num(least), verdict])
    cand_rows = [
        [
            algo,
            _num(c.get("validation_auc")),
            _num(c["test"].get("auc")),
            _num(c["test"].get("ece")),
        ]
        for algo, c in s.get("candidates", {}).items()
    ]
    out.append(
        (
            "Out-of-fold performance (nested cross-validation)"
            if crossfitted
            else "Out-of-time performance",
            [
                ("table", (["metric", "value", "gate", "verdict"], gate_rows)),
                ("table", (["candidate", "validation AUC", "test AUC", "test ECE"], cand_rows)),
                (
                    "table",
                    (
                        ["decile", "customers", "rate", "lift", "cumulative gains"],
                        [
                            [
                                g["decile"],
                                g["customers"],
                                _num(g["rate"], 3),
                                _num(g["lift"], 2),
                                _num(g["cum_gains"], 3),
                            ]
                            for g in s.get("gains", [])
                        ],
                    ),
                ),
            ],
        )
    )
    tuning = s.get("tuning")
    if tuning:
        done = sum(t["state"] == "complete" for t in tuning["trials"])
        pruned = sum(t["state"] == "pruned" for t in tuning["trials"])
        out.append(
            (
                "Tuning",
                [
                    (
                        "p",
                        f"Optuna TPE, {len(tuning['trials'])} trials ({done} complete, {pruned} "
                        f"pruned) in {tuning['seconds']} s, stopped by the {tuning['stopped_by']} "
                        f"budget; best early-stopping AUC {_num(tuning['best_auc'])}.",
                    ),
                    (
                        "table",
                        (
                            ["setting", "value"],
                            [[k, _num(v)] for k, v in sorted(tuning["best_params"].items())],
                        ),
                    ),
                ],
            )
        )
    if s.get("imbalance"):
        out.append(
            (
                "Class imbalance",
                [
                    (
                        "table",
                        (
                            ["strategy", "used", "AUC", "PR AUC", "Brier", "ECE"],
                            [
                                [
                                    r["strategy"],
                                    "yes" if r["used"] else "",
                                    _num(r["auc"]),
                                    _num(r["pr_auc"]),
                                    _num(r["brier"]),
                                    _num(r["ece"]),
                                ]
                                for r in s["imbalance"]
                            ],
                        ),
                    ),
                    (
                        "p",
                        "Each strategy calibrated on the same rows and judged on the out-of-time test; the configured one is used, none is chosen on the test.",
                    ),
                ],
            )
        )
    if s.get("importance"):
        out.append(
            (
                "What drives the score",
                [
                    (
                        "table",
                        (
                            ["feature", "mean |SHAP|", "gain"],
                            [
                                [r["feature"], _num(r["mean_abs_shap"]), _num(r["gain"], 0)]
                                for r in s["importance"][:10]
                            ],
                        ),
                    )
                ],
            )
        )
    caveats = list(s.get("notes", []))
    if crossfitted:
        est = s.get("estimate", {})
        caveats.append(
            "No time column: the figures are out of fold, not out of time; they hold for new "
            "rows like these, not necessarily for a later period. AUC over the folds "
            f"{_num(est.get('auc_mean'))} ± {_num(est.get('auc_sd'))}."
        )
    elif "random" in str(split.get("test", "")):
        caveats.append("The test rows are a random share, not a later snapshot: not out of time.")
    ece = test.get("ece")
    if ece is not None and ece > 0.02:
        caveats.append(
            f"Expected calibration error {ece:.3f}: read scores as ranks first, probabilities "
            "second, when the base rate moves between snapshots."
        )
    caveats.append(
        f"Valid only for feature set version {entry['feature_set_version']}; scoring refuses "
        "other versions. Retrain when the monitored features or the base rate drift."
    )
    out.append(("Caveats", [("list", caveats)]))
    return out


def markdown(entry: dict[str, Any], s: dict[str, Any], gates: dict[str, float]) -> str:
    lines = [f"# Model card: {entry['name']} v{entry['version']}", ""]
    for title, blocks in sections(entry, s, gates):
        lines += [f"## {title}", ""]
        for kind, body in blocks:
            if kind == "p":
                lines += [body, ""]
            elif kind == "list":
                lines += [f"- {item}" for item in body] + [""]
            else:
                columns, rows = body
                lines.append("| " + " | ".join(columns) + " |")
                lines.append("|" + "---|" * len(columns))
                lines += ["| " + " | ".join(_num(v) for v in row) + " |" for row in rows]
                lines.append("")
    return "\n".join(lines)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;"
    "padding:.25rem .6rem;text-align:left}th{background:#f3f3f3}"
)


def to_html(entry: dict[str, Any], s: dict[str, Any], gates: dict[str, float]) -> str:
    e = html.escape
    title = f"Model card: {entry['name']} v{entry['version']}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{e(title)}</h1>"
    ]
    for heading, blocks in sections(entry, s, gates):
        parts.append(f"<h2>{e(heading)}</h2>")
        for kind, body in blocks:
            if kind == "p":
                parts.append(f"<p>{e(body)}</p>")
            elif kind == "list":
                parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in body) + "</ul>")
            else:
                columns, rows = body
                head = "".join(f"<th>{e(c)}</th>" for c in columns)
                cells = "".join(
                    "<tr>" + "".join(f"<td>{e(_num(v))}</td>" for v in row) + "</tr>"
                    for row in rows
                )
                parts.append(f"<table><tr>{head}</tr>{cells}</table>")
    parts.append("</body></html>")
    return "".join(parts)
