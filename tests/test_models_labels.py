"""Binary targets as users' tables spell them, and the clear refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from custintel.core.errors import StageError
from custintel.models.dataset import binary_labels


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["T", "F", "F", "T"], [1, 0, 0, 1]),
        (["true", "False", "FALSE", "TRUE"], [1, 0, 0, 1]),
        (["yes", "no", "No", "Yes"], [1, 0, 0, 1]),
        (["Y", "N", "n", "y"], [1, 0, 0, 1]),
        ([1, 0, 0, 1], [1, 0, 0, 1]),
        ([1.0, 0.0, 0.0, 1.0], [1, 0, 0, 1]),
        (["1", "0", " 0 ", "1"], [1, 0, 0, 1]),
        ([True, False, False, True], [1, 0, 0, 1]),
    ],
)
def test_common_spellings_of_a_binary_label(values: list, expected: list[int]) -> None:
    got = binary_labels(pd.Series(values), "churn")
    assert got.tolist() == expected and got.dtype.kind == "i"


def test_a_named_positive_value() -> None:
    got = binary_labels(pd.Series(["churned", "stayed", "Churned"]), "status", "churned")
    assert np.array_equal(got, [1, 0, 1])


@pytest.mark.parametrize(
    ("values", "positive", "words"),
    [
        (["a", "b", "c"], None, ["'status' has 3 values", "'a', 'b', 'c'"]),
        (["a", "b", "c"], "a", ["'status' has 3 values"]),
        (["stay", "go"], "left", ["'left' does not occur in 'status'", "'go', 'stay'"]),
        (["stay", "go"], None, ["which one is the positive class", "--positive"]),
        (["T", None, "F", ""], None, ["2 rows have no value in 'status'", "lines 3, 5"]),
        (["T", "T"], None, ["one class only"]),
    ],
)
def test_labels_that_cannot_be_read_are_refused_by_name(
    values: list, positive: str | None, words: list[str]
) -> None:
    with pytest.raises(StageError) as caught:
        binary_labels(pd.Series(values, dtype=object), "status", positive)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
