"""A training table made ready for a model: features, target, snapshot dates, ids.

Identifiers, the target, the snapshot column and bookkeeping columns are never features;
constant columns are dropped with a note; text columns become pandas categories, which
LightGBM splits on natively (the logistic baseline one-hot encodes them). The split is by
time, the way the model will be used: it learns from earlier snapshots and is judged on
later ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from custintel.core.errors import StageError

NOT_FEATURES = frozenset({"customer_id", "as_of", "label", "feature_set_version"})


LEAK_AUC = 0.99
"""A single column ranking the target this well is flagged as a leak and left out."""


@dataclass
class Dataset:
    X: pd.DataFrame
    y: np.ndarray
    when: np.ndarray | None  # snapshot date of each row (datetime64[D]); None: no dates
    ids: np.ndarray
    notes: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return list(self.X.columns)

    @property
    def categorical(self) -> list[str]:
        return [c for c in self.X.columns if isinstance(self.X[c].dtype, pd.CategoricalDtype)]


def check_scoring_table(
    frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]], where: str
) -> None:
    """Refuse rows a model cannot score faithfully, naming the column and a value: a
    training column that is missing, a category the model never saw, text in a number
    column."""
    missing = [f for f in features if f not in frame]
    if missing:
        raise StageError(
            f"models: {where} lacks the training column(s) {', '.join(map(repr, missing[:5]))}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    for c in features:
        values = frame[c]
        if c in categories:
            text = values.dropna().astype(str)
            new = text[~text.isin(categories[c])]
            if len(new):
                raise StageError(
                    f"models: {where}: column {c!r} holds {new.iloc[0]!r} in "
                    f"{len(new):,} row(s), a category the model never saw in training"
                )
        elif not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce")
            bad = values[numbers.isna() & values.notna()]
            if len(bad):
                raise StageError(
                    f"models: {where}: column {c!r} holds {bad.iloc[0]!r} in {len(bad):,} "
                    "row(s) where the model expects a number"
                )


def feature_frame(
    frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """The model's feature columns of any frame, typed as at training time."""
    missing = [f for f in features if f not in frame]
    if missing:
        raise StageError(
            f"models: the features differ from the model's: {', '.join(missing[:5])} missing"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    numbers = [f for f in features if f not in categories]
    block = frame[numbers]
    try:
        values = block.to_numpy(dtype="float64", na_value=np.nan, copy=True)
    except (TypeError, ValueError):  # text in a number column: unreadable values are missing
        values = block.apply(pd.to_numeric, errors="coerce").to_numpy(
            "float64", na_value=np.nan, copy=True
        )
    # Parallel sums in the warehouse differ in the last bits from one build to the next;
    # rounding far below any meaningful precision makes a rebuild of the same data give
    # the same model. One 2-D step for all numbers, in place in the one copy made: a
    # single customer takes well under a millisecond, a million about one second.
    np.round(values, 9, out=values)
    X = pd.DataFrame(values, columns=numbers, index=frame.index, copy=False)
    for c in categories:
        if c not in features:
            continue
        text = frame[c].astype("string")
        # a category first seen after training counts as missing
        text = text.where(text.isin(categories[c]))
        X[c] = pd.Categorical(text, categories=categories[c])
    X = X[features]
    return X


def _leak_auc(x: pd.Series, y: np.ndarray) -> float:
    """How well one numeric column alone ranks the target (0.5: not at all, 1: perfectly)."""
    values = pd.to_numeric(x, errors="coerce").to_numpy("float64")
    low = np.nanmin(values) - 1 if np.isfinite(values).any() else 0.0
    auc = roc_auc_score(y, np.where(np.isnan(values), low, values))
    return float(max(auc, 1 - auc))


POSITIVE_WORDS = {"1", "true", "t", "yes", "y"}
NEGATIVE_WORDS = {"0", "false", "f", "no", "n"}
"""Binary labels as tables spell them: 0/1, true/false, T/F, yes/no, Y/N (any case)."""


def _word(value: object) -> str:
    """A label value as comparable text: 1, 1.0 and "1" are one value, case is ignored."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip().lower()


def binary_labels(values: pd.Series, name: str, positive: str | None = None) -> np.ndarray:
    """0/1 from a label column in any common binary spelling, or 1 where it equals
    ``positive``. Empty values, a third value, or a positive value that does not occur
    are refused, naming the column and the values found."""
    empty = values.isna() | (values.astype("string").str.strip() == "")
    if empty.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(empty.to_numpy())[:5])
        raise StageError(
            f"models: {int(empty.sum()):,} rows have no value in {name!r} "
            f"(file lines {rows}{', ...' if empty.sum() > 5 else ''})"
        )
    words = values.map(_word)
    found = sorted(words.unique())
    shown = ", ".join(repr(v) for v in found[:6]) + (", ..." if len(found) > 6 else "")
    if positive is not None:
        wanted = _word(positive)
        if wanted not in found:
            raise StageError(
                f"models: the positive value {positive!r} does not occur in {name!r} "
                f"(its values: {shown})"
            )
    if len(found) > 2:
        raise StageError(
            f"models: the target {name!r} has {len(found)} values ({shown}); a propensity "
            "model needs two (name the positive one with --positive to set the rest as 0)"
            if positive is None
            else f"models: the target {name!r} has {len(found)} values ({shown}); it must have two"
        )
    if len(found) < 2:
        raise StageError(
            f"models: the target {name!r} has one class only ({shown or 'none'}) "
            f"in {len(values):,} rows; nothing to learn"
        )
    if positive is None:
        if found[0] in NEGATIVE_WORDS and found[1] in POSITIVE_WORDS:
            wanted = found[1]
        elif found[1] in NEGATIVE_WORDS and found[0] in POSITIVE_WORDS:
            wanted = found[0]
        else:
            raise StageError(
                f"models: the target {name!r} has the values {shown}: which one is the "
                "positive class? (give it with --positive)"
            )
    return (words == wanted).to_numpy().astype(int)


def prepare(
    frame: pd.DataFrame,
    *,
    target: str = "label",
    time: str | None = "as_of",
    id_column: str = "customer_id",
    exclude: frozenset[str] = NOT_FEATURES,
    positive: str | None = None,
) -> Dataset:
    """Split a table into features, target, snapshot dates and ids; refuse a target with
    one class; drop constant, identifier-like and leaking columns with a note."""
    for col in (target, time):
        if col is not None and col not in frame:
            shown = ", ".join(map(str, frame.columns[:12]))
            more = ", ..." if frame.shape[1] > 12 else ""
            raise StageError(f"models: the table has no column {col!r} (columns: {shown}{more})")
    # Tables come back from the warehouse in any order; bagging and splits must not
    # depend on it, so the rows are put in a fixed order first.
    order = [c for c in (time, id_column) if c and c in frame]
    if order:
        frame = frame.sort_values(order, kind="stable", ignore_index=True)
    target_values = binary_labels(frame[target], target, positive)
    notes: list[str] = []
    leaks: list[str] = []
    when = None if time is None else pd.to_datetime(frame[time]).to_numpy().astype("datetime64[D]")
    # Decisions about columns come from the rows a model may learn from: never from the
    # latest snapshot, which is the out-of-time test.
    fit = (
        np.ones(len(frame), bool) if when is None or len(np.unique(when)) < 2 else when < when.max()
    )
    learn = frame[fit]
    fit_target = target_values[fit]
    keep = []
    for col in frame.columns:
        if col in exclude or col in (target, time, id_column):
            continue
        values = learn[col]
        if values.nunique(dropna=True) < 2:
            notes.append(f"{col}: constant, dropped")
            continue
        is_text = not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))
        if is_text and values.nunique() > 0.5 * len(values):
            notes.append(f"{col}: an identifier (a different value in most rows), dropped")
            continue
        if (
            pd.api.types.is_integer_dtype(values)
            and str(col).lower().endswith("id")
            and values.nunique() == len(values)
        ):
            notes.append(f"{col}: an identifier (a different whole number in every row), dropped")
            continue
        if not is_text:
            auc = _leak_auc(values, fit_target) if len(np.unique(fit_target)) == 2 else 0.5
            if auc >= LEAK_AUC:
                notes.append(
                    f"{col}: alone it predicts {target} almost perfectly (AUC {auc:.3f}); a "
                    "leak (known only after the outcome?), left out"
                )
                leaks.append(str(col))
                continue
        keep.append(col)
    categories = {
        c: sorted(learn[c].dropna().astype("string").unique())
        for c in keep
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    }
    X = feature_frame(frame, keep, categories)
    ids = (
        frame[id_column].astype("string").to_numpy()
        if id_column in frame
        else np.arange(len(frame)).astype(str)
    )
    if not keep:
        raise StageError("models: no usable feature column is left: " + "; ".join(notes))
    return Dataset(X.reset_index(drop=True), target_values, when, ids, notes, leaks)


@dataclass(frozen=True)
class TimeSplit:
    train: list[str]
    validation: str
    test: str


def time_split(when: np.ndarray) -> TimeSplit:
    """Latest snapshot: the out-of-time test; the one before: validation (early stopping,
    calibration, choosing the algorithm); all earlier: training."""
    dates = sorted({str(d) for d in np.unique(when)})
    if len(dates) < 3:
        raise StageError(
            f"models: {len(dates)} snapshot date(s) ({', '.join(dates)}); an out-of-time "
            "evaluation needs at least three (training, validation, test): add dates to "
            "features.snapshots"
        )
    return TimeSplit(dates[:-2], dates[-2], dates[-1])
