"""The HTML report: a page kit (:mod:`custintel.report.kit`), one module per stage's page
and the index that links them (:mod:`custintel.report.index`)."""

from custintel.report.index import write_reports

__all__ = ["write_reports"]
