"""custintel: a customer-intelligence engine for data-driven marketing.

The package is layered (see docs/architecture.md): ``core`` holds configuration, the
warehouse connection, data contracts and lineage; capabilities such as ``ingest`` build
on it; ``pipeline`` orders the stages; ``cli`` is the thin command-line interface.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("custintel")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
