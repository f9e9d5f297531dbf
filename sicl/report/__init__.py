"""Reports from evaluation runs: ``results.csv``, ``report.md`` and PNG plots (``sicl report``, docs/report.md)."""

from sicl.report.build import build_report
from sicl.report.collect import ReportError, ResultRow, collect_results, collect_runs
from sicl.report.reading import Results, Target, check_target, reading

__all__ = ["ReportError", "ResultRow", "Results", "Target", "build_report", "check_target", "collect_results",
           "collect_runs", "reading"]
