"""One wording of the tables every interface shows: the CLI prints these rows, the report
pages show them, later the dashboard. Figures come from the capabilities' summaries; only
the words and number formats live here."""

from __future__ import annotations

from typing import Any

from custintel.clv.value import MODEL_NAMES

CANDIDATE_COLUMNS = (
    "candidate",
    "validation AUC",
    "test AUC",
    "PR AUC",
    "KS",
    "Brier",
    "ECE",
    "top-decile lift",
)
THRESHOLD_COLUMNS = (
    "top share",
    "volume",
    "score cut-off",
    "expected positives",
    "observed",
    "cost",
    "value",
    "ROI",
)


IMBALANCE_COLUMNS = ("strategy", "training rows", "positive share", "AUC", "PR AUC", "Brier", "ECE")


def imbalance_cells(row: dict) -> list[str]:
    """One imbalance strategy's row: its training rows and validation figures."""
    return [
        row["strategy"] + (" (used)" if row["used"] else ""),
        f"{row['training_rows']:,}",
        f"{row['positive_share']:.3f}",
        f"{row['auc']:.4f}",
        f"{row['pr_auc']:.4f}",
        f"{row['brier']:.4f}",
        f"{row['ece']:.4f}",
    ]


def candidate_cells(name: str, candidate: dict, chosen: str) -> list[str]:
    """A candidate learner's row: validation AUC and its out-of-time figures."""
    t = candidate["test"]
    return [
        name + (" (chosen)" if name == chosen else ""),
        f"{candidate['validation_auc']:.4f}",
        f"{t['auc']:.4f}",
        f"{t['pr_auc']:.4f}",
        f"{t['ks']:.3f}",
        f"{t['brier']:.4f}",
        f"{t['ece']:.4f}",
        f"{t['top_decile_lift']:.2f}",
    ]


def threshold_cells(row: dict) -> list[str]:
    """One row of the threshold table as text."""
    return [
        f"{row['share']:.0%}",
        f"{row['volume']:,}",
        f"{row['cutoff']:.4f}",
        f"{row['expected_positives']:,.0f}",
        f"{row.get('observed_positives', 0):,}",
        f"{row['cost']:,.0f}",
        f"{row['expected_value']:,.0f}",
        f"{row['roi']:.0%}",
    ]


HOLDOUT_COLUMNS = (
    "model",
    "predicted",
    "actual",
    "error",
    "MAE",
    "RMSE",
    "MAE: none",
    "MAE: same rate",
)
SPEND_COLUMNS = ("prediction", "predicted total", "MAE", "Spearman", "top-decile revenue share")


def holdout_cells(name: str, m: dict[str, Any]) -> list[str]:
    """One model's row of the holdout table (the CLI and the report say it alike)."""
    return [
        MODEL_NAMES.get(name, name),
        f"{m['predicted']:,.0f}",
        f"{m['actual']:,.0f}",
        f"{m['aggregate_error']:+.1%}",
        f"{m['model']['mae']:.3f}",
        f"{m['model']['rmse']:.3f}",
        f"{m['naive_zero']['mae']:.3f}",
        f"{m['naive_same']['mae']:.3f}",
    ]


def spend_cells(way: dict[str, Any]) -> list[str]:
    """One prediction's row of the holdout spend table."""
    return [
        way["model"],
        f"{way['predicted_total']:,.0f}",
        f"{way['mae']:.2f}",
        f"{way['spearman']:.3f}",
        f"{way['top_decile_revenue_share']:.1%}",
    ]
