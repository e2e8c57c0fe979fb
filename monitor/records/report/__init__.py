"""Session reports built from plain data (no DB access, no clock): CSV, FHIR R4 and HTML."""

from monitor.records.report.csv_export import CSV_COLUMNS, report_csv
from monitor.records.report.fhir_bundle import report_fhir
from monitor.records.report.html_kit import DISCLAIMER
from monitor.records.report.html_report import report_html

__all__ = ["CSV_COLUMNS", "DISCLAIMER", "report_csv", "report_fhir", "report_html"]
