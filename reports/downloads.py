"""The export files as HTTP answers: the one place the Exports page and the REST API build them.

Each function checks what it is asked for first (an unknown CRF or form is ``Http404`` naming
it, before anything is audited), then records the export in the audit log — who, what, which
sites, blinded or not — before the first byte leaves, and answers with the stream of
``reports.exports`` / ``reports.odm``: the same bytes whichever door they leave by.
"""
from __future__ import annotations

from typing import Iterable

from django.http import StreamingHttpResponse

from core import audit
from trials import policy
from trials.models import Trial
from trials.policy import Perm

from . import audit_log, exports, odm


def streamed(user, trial: Trial, chunks: Iterable, *, content_type: str, filename: str,
             what: str, detail: dict, perm: Perm = Perm.EXPORT_DATA) -> StreamingHttpResponse:
    """Audit the export, then stream ``chunks``. Every export is audited before its first byte
    leaves: who, what, when, for which sites (where they hold ``perm``), blinded or not."""
    sites = list(policy.sites_for(user, trial, perm)
                 .order_by("code").values_list("code", flat=True))
    audit.record("data.exported", f"{trial.short_title}: {what} exported",
                 actor=user, trial=trial,
                 detail={**detail, "sites": sites, "blinded": policy.is_blinded_for(user, trial)})
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def crf_csv(user, trial: Trial, crf_code: str, form: str) -> StreamingHttpResponse:
    """One CRF's CSV (``long`` or ``wide``); ``Http404`` naming an unknown CRF or form."""
    chunks = exports.export_csv(user, trial, crf_code, form)
    return streamed(user, trial, chunks, content_type="text/csv; charset=utf-8",
                    filename=f"{trial.slug}-{crf_code}-{form}.csv",
                    what=f"CSV of {crf_code} ({form} form)",
                    detail={"format": "csv", "crf": crf_code, "form": form})


def all_crfs_zip(user, trial: Trial, form: str) -> StreamingHttpResponse:
    """Every CRF's CSV in one ZIP archive; ``Http404`` naming an unknown form."""
    chunks = exports.export_zip(user, trial, form)
    return streamed(user, trial, chunks, content_type="application/zip",
                    filename=f"{trial.slug}-crfs-{form}.zip",
                    what=f"CSV of every CRF ({form} form, ZIP)",
                    detail={"format": "csv-zip", "form": form})


def odm_xml(user, trial: Trial) -> StreamingHttpResponse:
    """The whole trial as one CDISC ODM 1.3.2 file."""
    chunks = odm.export_odm(user, trial)
    return streamed(user, trial, chunks, content_type="application/xml; charset=utf-8",
                    filename=f"{trial.slug}-odm-1.3.2.xml", what="CDISC ODM 1.3.2 file",
                    detail={"format": "odm-1.3.2"})


def audit_log_csv(user, trial: Trial, filters: audit_log.AuditFilters) -> StreamingHttpResponse:
    """The trial's audit log as ``user`` may read it, filtered, as CSV (``Perm.VIEW_AUDIT``)."""
    return streamed(user, trial, audit_log.export_csv(user, trial, filters),
                    content_type="text/csv; charset=utf-8",
                    filename=f"{trial.slug}-audit-log.csv", what="CSV of the audit log",
                    detail={"format": "csv", "audit_log": filters.described()},
                    perm=Perm.VIEW_AUDIT)
