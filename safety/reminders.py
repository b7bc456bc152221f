"""The SAE clock's reminders: one before the site's 24-hour deadline, one escalation after it,
each sent exactly once, the way ``patients.reminders`` sends visit reminders.

The job (``safety.tasks.check_sae_clock``, Celery beat every 15 minutes: a 24-hour clock
cannot wait for a daily run) does:

1. ``detect`` writes one ``SAEReminder`` per unsigned report that needs one — its deadline is
   less than 12 hours away (``due_soon``), or passed (``overdue``, looked back 90 days) — with
   one ``bulk_create(ignore_conflicts=True)``. The unique (report, kind) constraint makes a
   second or concurrent run insert nothing: the row exists before any mail leaves.
2. One ``send`` task per unsent row claims it with one atomic ``UPDATE`` (``claimed_by`` = the
   task id) committed before the mail is built; a concurrent task finds it claimed and sends
   nothing. Sent, the row is marked sent; a failed send releases the claim for Celery's retry
   or the next run; a claim older than ``CLAIM_LEASE`` (a killed worker) is taken over.
   A report signed in the meantime is not reminded (the row is withdrawn).

``due_soon`` goes to the site's investigators and coordinators; ``overdue`` also to the
trial's safety officers (the escalation to the sponsor's safety desk). No mail names an arm.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from patients.reminders import insert_new
from trials import policy
from trials.models import Membership
from trials.policy import Perm

from .models import (
    SITE_DEADLINE,
    SITE_REMINDER_BEFORE,
    SAEReminder,
    SAEReminderKind,
    SAEReport,
)

logger = logging.getLogger("ctms.safety")

OVERDUE_LOOKBACK = dt.timedelta(days=90)
CLAIM_LEASE = dt.timedelta(minutes=30)


def _windows(now: dt.datetime) -> dict[str, Q]:
    deadline_passed = now - SITE_DEADLINE
    return {
        SAEReminderKind.DUE_SOON: Q(aware_at__gt=deadline_passed,
                                    aware_at__lte=now - (SITE_DEADLINE - SITE_REMINDER_BEFORE)),
        SAEReminderKind.OVERDUE: Q(aware_at__lte=deadline_passed,
                                   aware_at__gt=deadline_passed - OVERDUE_LOOKBACK),
    }


@transaction.atomic
def detect(now: dt.datetime) -> int:
    """Write the reminders due at ``now``; returns how many are new."""
    unsigned = SAEReport.objects.filter(reported_at__isnull=True)
    found = sorted(
        (report_id, kind)
        for kind, window in _windows(now).items()
        for report_id in (unsigned.filter(window)
                          .exclude(Exists(SAEReminder.objects.filter(report=OuterRef("pk"),
                                                                     kind=kind)))
                          .order_by().values_list("pk", flat=True)))
    return insert_new([SAEReminder(report_id=r, kind=k, created_at=now) for r, k in found],
                      SAEReminder.objects.filter(created_at=now))


def waiting() -> list[int]:
    return list(SAEReminder.objects.filter(sent_at__isnull=True, withdrawn_at__isnull=True)
                .order_by("pk").values_list("pk", flat=True))


def run(now: dt.datetime, dispatch: Callable[[int], object]) -> tuple[int, int]:
    """Detect, then ``dispatch(reminder_id)`` for every reminder not yet sent."""
    new = detect(now)
    pending = waiting()
    for reminder_id in pending:
        try:
            dispatch(reminder_id)
        except Exception:  # one failed dispatch must not stop the others
            logger.exception("SAE reminder %s not dispatched; the next run retries", reminder_id)
    logger.info("SAE clock %s: %d new reminder(s), %d to send", now, new, len(pending))
    return new, len(pending)


def claim(reminder_id: int, token: str) -> int:
    """One atomic UPDATE, outside any transaction: visible to other workers at once."""
    now = timezone.now()
    return (SAEReminder.objects.filter(pk=reminder_id, sent_at__isnull=True,
                                       withdrawn_at__isnull=True)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_LEASE)
                    | Q(claimed_by=token))
            .update(claimed_by=token, claimed_at=now))


def recipients(reminder: SAEReminder) -> list[tuple[str, str]]:
    """(e-mail, language) of who is told: the site's staff who enter and sign CRFs, and for an
    overdue report the trial's safety officers too."""
    report = reminder.report
    site_roles = sorted(set(policy.roles_with(Perm.ENTER_CRF)) | set(policy.roles_with(Perm.SIGN_CRF)))
    who = Q(role__in=site_roles) & (Q(site=report.participant.site_id) | Q(site=None))
    if reminder.kind == SAEReminderKind.OVERDUE:
        who |= Q(role__in=policy.roles_with(Perm.ASSESS_SAFETY))
    rows = (Membership.objects.filter(who, trial=report.trial_id, active=True,
                                      user__is_active=True)
            .exclude(user__email="").order_by()
            .values_list("user__email", "user__profile__language").distinct())
    known = dict(settings.LANGUAGES)
    return sorted({(email, lang if lang in known else settings.LANGUAGE_CODE)
                   for email, lang in rows})


def build(reminder: SAEReminder, emails: list[str], language: str) -> EmailMessage:
    report = reminder.report
    with translation.override(language):
        due = timezone.localtime(report.aware_at + SITE_DEADLINE)
        names = {"number": report.number, "id": report.participant.study_id,
                 "site": report.participant.site.code, "term": report.term,
                 "due": formats.date_format(due, "DATETIME_FORMAT"), "trial": report.trial.short_title}
        if reminder.kind == SAEReminderKind.OVERDUE:
            subject = _("Overdue SAE report %(number)s (%(id)s)") % names
            body = _("The initial report of serious adverse event %(number)s (participant "
                     "%(id)s, site %(site)s: %(term)s) was due by %(due)s and is not signed. "
                     "The sponsor's safety desk is told.") % names
        else:
            subject = _("SAE report %(number)s due by %(due)s") % names
            body = _("The initial report of serious adverse event %(number)s (participant "
                     "%(id)s, site %(site)s: %(term)s) must be signed by %(due)s, 24 hours "
                     "after the site became aware of it.") % names
        url = settings.SITE_URL.rstrip("/") + reverse("sae_detail", args=[report.trial.slug,
                                                                         report.pk])
        body += "\n\n" + url + "\n"
    return EmailMessage(f"[CTMS] [{report.trial.short_title}] {subject}", body,
                        settings.DEFAULT_FROM_EMAIL, emails,
                        headers={"X-CTMS-SAE": f"{report.number} {reminder.kind}"})


def send(reminder_id: int, *, token: str) -> int:
    """Send one claimed reminder; returns how many messages left (0: nothing to send).
    Raises what the mail backend raises, the row left unsent and unclaimed."""
    if not claim(reminder_id, token):
        return 0
    mine = SAEReminder.objects.filter(pk=reminder_id, claimed_by=token, sent_at__isnull=True)
    reminder = SAEReminder.objects.select_related(
        "report__participant__site", "report__trial").get(pk=reminder_id)
    if reminder.report.reported_at is not None:
        mine.update(withdrawn_at=timezone.now())
        return 0
    by_language: dict[str, list[str]] = {}
    for email, language in recipients(reminder):
        by_language.setdefault(language, []).append(email)
    try:
        for language, emails in sorted(by_language.items()):
            build(reminder, emails, language).send()
    except Exception as exc:
        mine.update(attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    claimed_by="", claimed_at=None)
        raise
    mine.update(sent_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
    return len(by_language)
