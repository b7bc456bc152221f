from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Reports built by Celery (enrolment and outcomes PDFs) and the exports (CSV, CDISC ODM)."""

    name = "reports"
