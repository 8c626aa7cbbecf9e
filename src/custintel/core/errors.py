"""Errors a user can act on.

Every error names what failed (the file, the row or column, the config path, the rule) so
that the CLI can print it as one line and exit non-zero without a traceback.
"""

from __future__ import annotations


class CustintelError(Exception):
    """Base class of every error custintel reports to users."""


class ConfigError(CustintelError):
    """The project configuration is missing or invalid."""


class SourceError(CustintelError):
    """A source file or query cannot be read or does not match its contract."""


class WarehouseError(CustintelError):
    """The warehouse cannot be opened or written."""


class ReconciliationError(CustintelError):
    """Row counts of a load do not add up: rows_in != clean + quarantined + duplicates."""


class StageError(CustintelError):
    """A pipeline stage cannot run (its inputs are missing or unusable)."""


class NotEnoughDataError(StageError):
    """The data are valid but too few for the step (for example customers to cluster);
    ``custintel run`` skips such a stage with this message instead of failing."""
