"""Reports built in the background: the registry of report kinds, requesting one, building it
(called by the Celery task), re-dispatching what the broker never got, and who may download.

Nothing is lost, whatever fails:

- *Redis unreachable* when a report is requested: the request is saved (``queued``), the page
  answers, and the periodic job (``outcomes.redispatch_reports``, every minute under beat)
  hands it to the broker once it is back.
- *Duplicate delivery*: the task first claims the request with one conditional UPDATE
  (queued -> running); a second delivery finds it claimed and does nothing.
- *Worker killed mid-build*: the task is ``acks_late`` with ``reject_on_worker_lost``, so the
  broker delivers it again, with the same task id; a claim held by that same id is taken again
  (only a dead worker's redelivery carries it). If the message itself is lost, the build's
  heartbeat goes stale and after ``LEASE`` the periodic job dispatches it again. After
  ``MAX_ATTEMPTS`` builds that never finished, it is marked failed.
- *Half-written files*: the builder writes to a temporary file; the bytes and the ``done``
  status are published in one UPDATE, conditional on still holding the claim.

Adding a kind of report is one entry in ``KINDS``: its label, the permission needed, and the
builder ``builder(trial, *, viewer, stream, progress)`` which writes the PDF to ``stream`` as
``viewer`` may see it and calls ``progress(percent, text)`` as it goes.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import tempfile
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.http import Http404, HttpResponse
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _, gettext_lazy
from kombu.exceptions import OperationalError as BrokerError

from core import audit
from trials import policy
from trials.models import Trial
from trials.policy import Perm

from .models import ReportRequest, ReportStatus


logger = logging.getLogger("ctms.reports")

LEASE = dt.timedelta(minutes=2)          # a build silent this long is taken over
REDISPATCH_AFTER = dt.timedelta(minutes=5)  # a queued request handed over this long ago, again
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class ReportKind:
    label: str | Promise
    permission: Perm
    builder: str        # dotted path of builder(trial, *, viewer, stream, progress)
    filename: str       # e.g. "enrolment-{slug}-{date}.pdf"; "{study_id}" for one participant
    # A report of one participant (the casebook): requested for a participant, whom the
    # builder receives as ``participant``; the permission is needed at that participant's site.
    per_participant: bool = False
    # A report that compares the arms (counts, curves, tests per arm): shown per arm only to a
    # reader who may see comparisons (``policy.can_see_comparisons``), not merely arms.
    compares_arms: bool = False

    def shows_arms_to(self, user, trial: Trial) -> bool:
        """Will the report built for ``user`` show arms (or compare them)?"""
        if self.compares_arms:
            return policy.can_see_comparisons(user, trial)
        return not policy.is_blinded_for(user, trial)

    def build(self, trial: Trial, *, viewer, stream, progress, participant=None) -> None:
        extra = {"participant": participant} if self.per_participant else {}
        import_string(self.builder)(trial, viewer=viewer, stream=stream, progress=progress,
                                    **extra)


KINDS: dict[str, ReportKind] = {
    "enrolment": ReportKind(gettext_lazy("Enrolment report"), Perm.VIEW_REPORTS,
                            "reports.enrolment_pdf.build_enrolment_report",
                            "enrolment-{slug}-{date}.pdf", compares_arms=True),
    "outcomes": ReportKind(gettext_lazy("Outcomes report"), Perm.VIEW_REPORTS,
                           "reports.outcomes_report.build_outcomes_report",
                           "outcomes-{slug}-{date}.pdf", compares_arms=True),
    # All of one participant's data, for the roles that read reports (the data manager, the
    # sponsor's staff, the monitor, the statistician), at the participant's site: a monitor
    # assigned to some sites, for their participants only.
    "casebook": ReportKind(gettext_lazy("Casebook"), Perm.VIEW_REPORTS,
                           "reports.casebook.build_casebook",
                           "casebook-{slug}-{study_id}-{date}.pdf", per_participant=True),
}


def kinds_for(user, trial: Trial) -> dict[str, ReportKind]:
    """The kinds of report ``user`` may request (or read) in ``trial``."""
    return {code: k for code, k in KINDS.items() if policy.has_perm(user, k.permission, trial)}


def trial_kinds_for(user, trial: Trial) -> dict[str, ReportKind]:
    """The kinds of report of the whole trial ``user`` may request (the Reports page's
    buttons); a casebook is requested from its participant's page."""
    return {code: k for code, k in kinds_for(user, trial).items() if not k.per_participant}


def may_request_casebook(user, participant) -> bool:
    return policy.has_perm(user, KINDS["casebook"].permission, participant.trial,
                           participant.site)


# --------------------------------------------------------------------------- requesting


def request_report(trial: Trial, kind: str, *, by, participant=None) -> ReportRequest:
    """Record the request and hand it to a worker once committed. Unknown kind, a casebook
    without its participant or a trial report with one: ValidationError; not allowed:
    PermissionDenied. The broker being down leaves it queued, never an error.

    ``participant`` (for a casebook) is one the caller obtained through the site-isolating
    selectors (``patients.selectors``), so another site's is a 404 before this runs."""
    spec = KINDS.get(kind)
    if spec is None:
        raise ValidationError({"kind": _("Unknown kind of report %(kind)s; choose one of: "
                                         "%(choices)s.") % {"kind": repr(kind),
                                                             "choices": ", ".join(KINDS)}})
    if spec.per_participant and participant is None:
        raise ValidationError({"participant": _("A %(label)s is of one participant: give the "
                                                "participant's study ID.") % {
            "label": spec.label}})
    if not spec.per_participant and participant is not None:
        raise ValidationError({"participant": _("A %(label)s covers the whole trial: give no "
                                                "participant.") % {"label": spec.label}})
    if participant is not None and participant.trial_id != trial.pk:
        raise ValidationError({"participant": _("Participant %(id)s is not in this trial.") % {
            "id": participant.study_id}})
    site = participant.site if participant is not None else None
    if not policy.has_perm(by, spec.permission, trial, site):
        raise PermissionDenied(_("You may not request this report in this trial."))
    with transaction.atomic():
        report = ReportRequest.objects.create(trial=trial, kind=kind, requested_by=by,
                                              requested_at=timezone.now(),
                                              participant=participant)
        with translation.override(None):  # the audit trail is in English, whoever asks
            label = str(spec.label)
        of = f" of {participant.study_id}" if participant is not None else ""
        audit.record("report.requested", f"{label}{of} #{report.pk} requested", actor=by,
                     trial=trial, obj=report)
        transaction.on_commit(lambda: dispatch(report.pk))
    return report


def dispatch(request_id: int) -> bool:
    """Hand the build to the broker; False (and the request stays queued) when it cannot be
    reached. With no broker configured (the embedded demo) the build runs here and now."""
    from reports.tasks import build_report

    try:
        build_report.delay(request_id)
    except BrokerError as exc:
        logger.warning("broker unreachable (%s): report request %s stays queued", exc,
                       request_id)
        return False
    except Exception:  # run eagerly (no broker) and failed outside the build: log, never a 500
        logger.exception("report request %s could not be built now; the periodic job retries",
                         request_id)
        return False
    ReportRequest.objects.filter(pk=request_id, status=ReportStatus.QUEUED).update(
        dispatched_at=timezone.now())
    return True


def redispatch_unfinished(*, now: dt.datetime | None = None) -> int:
    """The periodic job: dispatch again the requests the broker never got (or lost), and the
    builds whose worker died; give up on those that died ``MAX_ATTEMPTS`` times."""
    now = now or timezone.now()
    stale = Q(status=ReportStatus.RUNNING, heartbeat_at__lt=now - LEASE)
    ReportRequest.objects.filter(stale, attempts__gte=MAX_ATTEMPTS).update(
        status=ReportStatus.FAILED, finished_at=now, step="",
        error=f"Gave up after {MAX_ATTEMPTS} builds that never finished (worker lost).")
    waiting = Q(status=ReportStatus.QUEUED) & (
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - REDISPATCH_AFTER))
    sent = 0
    for pk in (ReportRequest.objects.filter(waiting | stale).order_by("requested_at")
               .values_list("pk", flat=True)):
        if not dispatch(pk):
            break  # the broker is still down: try again next time
        sent += 1
    return sent


# --------------------------------------------------------------------------- building


def claim(request_id: int, *, token: str, now: dt.datetime | None = None) -> bool:
    """Take the request for building, atomically: queued, or running but abandoned (silent
    longer than the lease, or claimed by this same task id, i.e. redelivered after its worker
    died). True for exactly one of two concurrent claimers."""
    now = now or timezone.now()
    takeable = (Q(status=ReportStatus.QUEUED)
                | Q(status=ReportStatus.RUNNING, heartbeat_at__lt=now - LEASE)
                | Q(status=ReportStatus.RUNNING, claimed_by=token))
    return bool(ReportRequest.objects.filter(takeable, pk=request_id,
                                             attempts__lt=MAX_ATTEMPTS).update(
        status=ReportStatus.RUNNING, claimed_by=token, heartbeat_at=now, started_at=now,
        attempts=F("attempts") + 1, progress=0, step=_("Starting"), error=""))


def _language_of(user) -> str | None:
    profile = getattr(user, "profile", None)  # a missing profile raises an AttributeError
    return profile.language if profile else None


def build(request_id: int, *, token: str) -> str:
    """Claim and build one request; the outcome ("done", "failed", or "skipped" when someone
    else holds it or it is finished)."""
    if not claim(request_id, token=token):
        return "skipped"
    report = (ReportRequest.objects.select_related("trial", "requested_by", "participant__site")
              .defer("content").get(pk=request_id))
    mine = ReportRequest.objects.filter(pk=request_id, claimed_by=token,
                                        status=ReportStatus.RUNNING)
    spec = KINDS.get(report.kind)
    trial, viewer = report.trial, report.requested_by

    def fail(message: str) -> str:
        mine.update(status=ReportStatus.FAILED, error=message, finished_at=timezone.now(),
                    step="")
        audit.record("report.failed", f"{report.kind} report #{report.pk} failed", trial=trial,
                     obj=report, detail={"error": message[:500]})
        return "failed"

    if spec is None:
        return fail(f"Unknown kind of report {report.kind!r}.")
    participant = report.participant
    if spec.per_participant and participant is None:
        return fail(f"A {report.kind} report needs its participant.")
    # The requester's rights at build time decide what the report shows.
    site = participant.site if spec.per_participant else None
    if not policy.has_perm(viewer, spec.permission, trial, site):
        with translation.override(_language_of(viewer)):
            return fail(_("The requester may no longer see this report."))
    with_arms = spec.shows_arms_to(viewer, trial)
    if spec.per_participant:  # covers the one site of its participant
        site_ids = [participant.site_id]
    else:
        site_ids = sorted(policy.sites_for(viewer, trial, spec.permission)
                          .values_list("pk", flat=True))

    def progress(percent: int, text: str) -> None:
        mine.update(progress=max(0, min(99, int(percent))), step=str(text)[:255],
                    heartbeat_at=timezone.now())

    with tempfile.TemporaryFile() as stream, translation.override(_language_of(viewer)):
        try:
            spec.build(trial, viewer=viewer, stream=stream, progress=progress,
                       participant=participant)
        except Exception as exc:  # a bug or bad data: record it, never a silent loss
            logger.exception("report request %s failed", request_id)
            return fail(f"{type(exc).__name__}: {exc}")
        stream.seek(0)
        content = stream.read()
    now = timezone.now()
    filename = spec.filename.format(slug=trial.slug, date=timezone.localdate(now).isoformat(),
                                    study_id=participant.study_id if participant else "")
    published = mine.update(status=ReportStatus.DONE, content=content, size=len(content),
                            sha256=hashlib.sha256(content).hexdigest(), filename=filename,
                            with_arms=with_arms, site_ids=site_ids, progress=100, step="",
                            finished_at=now, heartbeat_at=now)
    if not published:
        return "skipped"  # the claim was taken over meanwhile: the other build publishes
    audit.record("report.built", f"{spec.label} #{report.pk} built ({len(content)} bytes)",
                 trial=trial, obj=report)
    return "done"


# --------------------------------------------------------------------------- downloading


@dataclass(frozen=True)
class Rights:
    """What one user may read of reports in one trial, computed once for a list page.

    A report may be downloaded by whoever holds the kind's permission *and* at least the rights
    it was built with: if it shows arms, only a reader who may see arms (if it compares them, a
    reader who may see comparisons: ``policy.can_see_comparisons``); and only a reader who
    may see every site it covers. So its requester may (while they keep their role), and so may
    any colleague with the same or more rights; a blinded sponsor never gets a statistician's
    unblinded report.
    """

    user: object
    trial: Trial
    blinded: bool
    site_ids: frozenset[int]
    comparisons: bool = False   # may see comparisons between arms (closed reports)
    # The sites where the user holds each other permission a kind needs (the casebook's
    # EXPORT_DATA), read when first needed.
    other_sites: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, user, trial: Trial) -> "Rights":
        return cls(user, trial, policy.is_blinded_for(user, trial),
                   frozenset(policy.sites_for(user, trial, Perm.VIEW_REPORTS)
                             .values_list("pk", flat=True)),
                   policy.can_see_comparisons(user, trial))

    def sites_with(self, perm: Perm) -> frozenset[int]:
        if perm == Perm.VIEW_REPORTS:
            return self.site_ids
        if perm not in self.other_sites:
            self.other_sites[perm] = frozenset(policy.sites_for(self.user, self.trial, perm)
                                               .values_list("pk", flat=True))
        return self.other_sites[perm]

    def may_download(self, report: ReportRequest) -> bool:
        spec = KINDS.get(report.kind)
        if report.status != ReportStatus.DONE or spec is None:
            return False
        if not policy.has_perm(self.user, spec.permission, self.trial):
            return False
        if report.with_arms and (not self.comparisons if spec.compares_arms else self.blinded):
            return False
        return set(report.site_ids) <= self.sites_with(spec.permission)


def may_download(user, report: ReportRequest) -> bool:
    return Rights.of(user, report.trial).may_download(report)


def reports_for(user, trial: Trial):
    """The reports of ``trial`` ``user`` may see listed (PDF deferred): those of the whole
    trial, and the casebooks of participants at sites they may see (another site's casebook is
    not listed, and is a 404 by its id, as its participant is)."""
    sites = policy.sites_for(user, trial, Perm.VIEW_PARTICIPANTS).values("pk")
    return (ReportRequest.objects.defer("content")
            .select_related("trial", "requested_by", "participant")
            .filter(trial=trial)
            .filter(Q(participant__isnull=True) | Q(participant__site__in=sites)))


def report_of(trial: Trial, report_id: int, user=None) -> ReportRequest:
    """One report of ``trial``, its PDF deferred; ``Http404`` for none, or another trial's, or
    (given ``user``) a casebook of a participant at a site ``user`` may not see."""
    reports = (reports_for(user, trial) if user is not None else
               ReportRequest.objects.defer("content")
               .select_related("trial", "requested_by", "participant").filter(trial=trial))
    report = reports.filter(pk=report_id).first()
    if report is None:
        raise Http404(_("No report %(id)s in this trial.") % {"id": report_id})
    return report


def download(user, trial: Trial, report_id: int) -> HttpResponse:
    """The PDF of one report, for the Reports page and the API alike: ``Http404`` until it is
    built (or for another trial's), ``PermissionDenied`` when it was built with rights ``user``
    lacks (``Rights.may_download``)."""
    report = report_of(trial, report_id, user)
    if report.status != ReportStatus.DONE:
        raise Http404(_("Report %(id)s is not built (yet).") % {"id": report.pk})
    if not Rights.of(user, trial).may_download(report):
        raise PermissionDenied(_("This report was built with rights you do not have."))
    content = ReportRequest.objects.filter(pk=report.pk).values_list("content", flat=True)[0]
    if KINDS[report.kind].per_participant:  # one participant's data leaves: audited
        with translation.override(None):
            label = str(KINDS[report.kind].label)
        audit.record("report.downloaded", f"{label} #{report.pk} downloaded", actor=user,
                     trial=trial, obj=report, detail={"filename": report.filename})
    response = HttpResponse(bytes(content), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{report.filename}"'
    response["Cache-Control"] = "private, no-store"
    return response
