"""Statistics any capability may import: intervals and tests, bootstrap, ranking quality
(AUC, gains and lift, calibration) and population stability (PSI, in the warehouse).

It sits beside ``core`` at the bottom of the layers: it imports no capability, so
models, features, measurement and monitoring all read the same definitions.
"""

from custintel.stats.intervals import (
    Interval,
    bootstrap,
    difference_of_means,
    difference_of_proportions,
    proportion,
)
from custintel.stats.psi import Thresholds, psi, stability
from custintel.stats.ranking import (
    auc,
    calibration_bins,
    expected_calibration_error,
    gains,
    ks_statistic,
)

__all__ = [
    "Interval",
    "Thresholds",
    "auc",
    "bootstrap",
    "calibration_bins",
    "difference_of_means",
    "difference_of_proportions",
    "expected_calibration_error",
    "gains",
    "ks_statistic",
    "proportion",
    "psi",
    "stability",
]
