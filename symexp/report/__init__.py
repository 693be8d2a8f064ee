"""Aggregation of results.json trees into paper-style tables and figures."""

from symexp.report.aggregate import collect, write_report

__all__ = ["collect", "write_report"]
