"""Visit reminders: found set-wise once a day, told once, in one digest per person.

The daily job (``patients.tasks.send_visit_reminders``, Celery beat at 07:00) runs
``raise_reminders`` and then one ``send_digest`` per recipient. Why each reminder is sent
exactly once:

1. ``detect`` writes one ``VisitReminder`` row per planned visit that needs one — window opens
   within 7 days, closes within 2 days, or closed without the visit done (in the last 90 days:
   ``OVERDUE_LOOKBACK_DAYS``) — with one ``bulk_create(ignore_conflicts=True)``. The unique
   (visit, kind) constraint makes a second run, or a concurrent one, insert nothing: the row
   exists before any mail leaves.
2. ``fan_out`` writes one ``ReminderDelivery`` per new reminder and recipient (the
   investigators and coordinators of the visit's site, as ``policy`` says: memberships at that
   site or at all sites), unique per (reminder, recipient), with one more ``bulk_create``, in
   the same transaction as step 1: a crash between the two leaves neither.
3. ``send_digest`` claims a person's unsent deliveries with one atomic ``UPDATE`` (``claimed_by``
   = the Celery task id) that commits before the mail is built. A concurrent run's ``UPDATE``
   waits for that commit, re-reads the rows, finds them claimed, and claims nothing. The digest
   is sent; only then are the claimed rows marked sent. A failed send leaves them unsent and
   releases the claim, for Celery's retry (with back-off) or the next run; a worker killed
   mid-send leaves a claim that expires after ``CLAIM_LEASE``, and the next run takes the rows
   over.

The one window this cannot close: the mail server accepted the digest and the process died
before the ``UPDATE`` marking it sent committed. Then the next run sends it again — at least
once rather than lost, which for a clinical reminder is the right way round.

Every statement works on the whole set (no query per visit): the cost is a fixed number of
statements (on SQLite, one insert per batch of rows) plus a few per recipient.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _, ngettext

from trials import policy
from trials.models import Membership, Site
from trials.policy import Perm

from .models import ReminderDelivery, ReminderKind, Visit, VisitReminder, VisitStatus

logger = logging.getLogger("ctms.reminders")

OPENS_WITHIN_DAYS = 7        # "window opens in 7 days"
CLOSES_WITHIN_DAYS = 2       # "window closes in 2 days"
# An overdue visit is reminded once, normally the morning after its window closed. After an
# outage the job catches up on windows closed in the last 90 days; older overdue visits stay
# on the worklists (and would otherwise turn a first run on old data into a flood).
OVERDUE_LOOKBACK_DAYS = 90
CLAIM_LEASE = dt.timedelta(minutes=30)  # longer than any send can take (EMAIL_TIMEOUT)
SECTION_LIMIT = 20           # visits listed per kind in one digest; the rest are counted
KIND_ORDER = [ReminderKind.OVERDUE, ReminderKind.CLOSES_SOON, ReminderKind.OPENS_SOON]


def _staff() -> QuerySet[Membership]:
    """Who is told about a site's visits: active investigators and coordinators (``policy``:
    the roles with ``VISIT_REMINDERS``) of the trial, at that site or at all its sites
    (``site`` empty), active users with an e-mail address."""
    return (Membership.objects
            .filter(active=True, role__in=policy.roles_with(Perm.VISIT_REMINDERS),
                    user__is_active=True)
            .exclude(user__email="")
            .order_by())


def _windows(today: dt.date) -> dict[str, Q]:
    """The planned visits each kind of reminder is for, on ``today``."""
    opens_by = today + dt.timedelta(days=OPENS_WITHIN_DAYS)
    closes_by = today + dt.timedelta(days=CLOSES_WITHIN_DAYS)
    overdue_since = today - dt.timedelta(days=OVERDUE_LOOKBACK_DAYS)
    return {ReminderKind.OPENS_SOON: Q(window_opens__gt=today, window_opens__lte=opens_by),
            ReminderKind.CLOSES_SOON: Q(window_closes__gte=today, window_closes__lte=closes_by),
            ReminderKind.OVERDUE: Q(window_closes__gte=overdue_since, window_closes__lt=today)}


def insert_new(rows: list, written_now: QuerySet) -> int:
    """``bulk_create`` the rows, those a unique constraint already holds skipped; return how
    many are new: the rows ``written_now`` finds (stamped with this run's instant, which tells
    one run from another, as in ``fan_out``) after the insert, less those it found before.
    With ``ignore_conflicts`` the database does not say which rows it skipped."""
    if not rows:
        return 0
    before = written_now.count()
    written_now.model.objects.bulk_create(rows, ignore_conflicts=True)
    return written_now.count() - before


@transaction.atomic
def raise_reminders(today: dt.date) -> tuple[int, int]:
    """Write today's reminders and their deliveries, all or nothing.

    Returns (new reminders, new deliveries). A reminder is raised only for a site with
    someone to tell; until then the visit stays a candidate, so a coordinator appointed
    later still hears of an overdue visit.
    """
    now = timezone.now()
    return detect(today, now=now), fan_out(now)


def detect(today: dt.date, *, now: dt.datetime) -> int:
    """Write a ``VisitReminder`` for every planned visit that needs one on ``today`` and has
    someone to tell; returns how many rows are new.

    One query per kind reads a date range of planned visits (partial indexes) at the sites
    with someone to tell, less those already reminded of that kind (read before the insert,
    never against the table while it fills); then one ``bulk_create``. A concurrent run that
    found the same visits waits on the unique (visit, kind) index and skips them. Rows go in
    sorted, so two runs take the index entries in the same order and cannot deadlock."""
    staff = _staff()
    staffed = Site.objects.filter(Exists(
        staff.filter(trial=OuterRef("trial")).filter(Q(site=OuterRef("pk")) | Q(site=None))))
    planned = Visit.objects.filter(status=VisitStatus.PLANNED, participant__site__in=staffed)
    found = sorted(
        (visit_id, kind)
        for kind, window in _windows(today).items()
        for visit_id in (planned.filter(window)
                         .exclude(Exists(VisitReminder.objects.filter(visit=OuterRef("pk"),
                                                                      kind=kind)))
                         .order_by().values_list("pk", flat=True)))
    return insert_new([VisitReminder(visit_id=visit_id, kind=kind, created_at=now)
                        for visit_id, kind in found],
                       VisitReminder.objects.filter(created_at=now))


def fan_out(now: dt.datetime) -> int:
    """One ``ReminderDelivery`` per reminder raised at ``now`` and per person to tell: the
    site's staff and the trial's all-sites staff, each person once. Two reads (the new
    reminders with their visit's trial and site, the staff: a few hundred rows), the pairs
    made here, one ``bulk_create``."""
    raised = list(VisitReminder.objects.filter(created_at=now).order_by("pk")
                  .values_list("pk", "visit__participant__trial_id",
                               "visit__participant__site_id"))
    if not raised:
        return 0
    at_site: dict[tuple[int, int], set[int]] = defaultdict(set)
    all_sites: dict[int, set[int]] = defaultdict(set)
    for trial_id, site_id, user_id in _staff().values_list("trial_id", "site_id", "user_id"):
        (all_sites[trial_id] if site_id is None else at_site[trial_id, site_id]).add(user_id)
    nobody: set[int] = set()
    deliveries = [
        ReminderDelivery(reminder_id=reminder_id, recipient_id=user_id, created_at=now)
        for reminder_id, trial_id, site_id in raised
        for user_id in sorted(at_site.get((trial_id, site_id), nobody)
                              | all_sites.get(trial_id, nobody))]
    return insert_new(deliveries, ReminderDelivery.objects.filter(reminder__created_at=now))


def recipients_waiting() -> list[int]:
    """Everyone with a delivery not yet sent (today's, or a failed one from before)."""
    return list(ReminderDelivery.objects.filter(sent_at__isnull=True, withdrawn_at__isnull=True)
                .order_by().values_list("recipient_id", flat=True).distinct())


@dataclass(frozen=True)
class RunResult:
    reminders: int
    deliveries: int
    recipients: int


def run(today: dt.date, dispatch: Callable[[int], object]) -> RunResult:
    """The daily job: detect, fan out, then ``dispatch(user_id)`` once per recipient (the task
    enqueues one digest task each; the management command sends in-process)."""
    found, fanned = raise_reminders(today)
    users = recipients_waiting()
    for user_id in users:
        try:
            dispatch(user_id)
        except Exception:  # one person's failed digest must not stop the others'
            logger.exception("visit reminder digest for user %s failed; it stays unsent and "
                             "is retried by the next run", user_id)
    logger.info("visit reminders %s: %d new, %d deliveries, %d recipient(s)",
                today, found, fanned, len(users))
    return RunResult(found, fanned, len(users))


# --------------------------------------------------------------------------- one person's digest


def claim(user_id: int, token: str) -> int:
    """Claim the person's unsent deliveries for ``token`` (one atomic UPDATE). Must run outside
    any transaction, so the claim is visible to other workers before the mail is sent."""
    now = timezone.now()
    return (ReminderDelivery.objects
            .filter(recipient_id=user_id, sent_at__isnull=True, withdrawn_at__isnull=True)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_LEASE)
                    | Q(claimed_by=token))
            .update(claimed_by=token, claimed_at=now))


@dataclass(frozen=True)
class DigestItem:
    """One visit in a digest: plain values, read in one query (no model per row)."""

    pk: int                  # the delivery's
    status: str              # the visit's, now
    kind: str
    code: str
    label: str
    occurrence: int
    unscheduled: bool
    target_date: dt.date
    window_opens: dt.date
    window_closes: dt.date
    study_id: str
    site_code: str
    trial_slug: str
    trial_title: str

    @property
    def title(self) -> str:  # as ``Visit.title``
        numbered = self.unscheduled or self.occurrence > 1
        return f"{self.label} #{self.occurrence}" if numbered else self.label


_ITEM_FIELDS = ["pk", "reminder__visit__status", "reminder__kind", "reminder__visit__code",
                "reminder__visit__label",
                "reminder__visit__occurrence", "reminder__visit__unscheduled",
                "reminder__visit__target_date", "reminder__visit__window_opens",
                "reminder__visit__window_closes", "reminder__visit__participant__study_id",
                "reminder__visit__participant__site__code",
                "reminder__visit__participant__trial__slug",
                "reminder__visit__participant__trial__short_title"]


def send_digest(user_id: int, *, today: dt.date, token: str) -> int:
    """Send ``user_id`` one mail listing their claimed reminders; return how many visits it
    lists (0: nothing to send). Raises what the mail backend raises, rows left unsent.

    Four statements whatever the number of visits: claim, read, read the recipient, mark sent
    (and one more when some visits were done or closed since they were found).
    """
    if not claim(user_id, token):
        return 0
    mine = ReminderDelivery.objects.filter(recipient_id=user_id, claimed_by=token,
                                           sent_at__isnull=True, withdrawn_at__isnull=True)
    rows = [DigestItem(*row) for row in mine.values_list(*_ITEM_FIELDS)]
    stale = [item.pk for item in rows if item.status != VisitStatus.PLANNED]
    if stale:
        # Done or closed since it was found: nobody needs reminding any more.
        ReminderDelivery.objects.filter(pk__in=stale).update(withdrawn_at=timezone.now())
    items = [item for item in rows if item.status == VisitStatus.PLANNED]
    if not items:
        return 0
    user = get_user_model().objects.select_related("profile").get(pk=user_id)
    message = build_digest(user, items, today=today)
    try:
        message.send()
    except Exception as exc:
        # Nothing left: release the claim, so the retry (or, if retries run out, the next
        # daily run) takes the rows again at once.
        mine.update(attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    claimed_by="", claimed_at=None)
        raise
    mine.update(sent_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
    return len(items)


def language_of(user) -> str:
    """The recipient's language (``Profile.language``), the site's default without a profile."""
    try:
        language = user.profile.language
    except ObjectDoesNotExist:  # no profile yet
        language = settings.LANGUAGE_CODE
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _when(item: DigestItem) -> str:
    """"due 2027-03-03, window …", dates in the active language's one format (``config/formats``)."""
    return _("due %(target)s, window %(opens)s to %(closes)s") % {
        "target": formats.date_format(item.target_date, "DATE_FORMAT"),
        "opens": formats.date_format(item.window_opens, "DATE_FORMAT"),
        "closes": formats.date_format(item.window_closes, "DATE_FORMAT")}


def build_digest(user, items: Iterable[DigestItem], *, today: dt.date) -> EmailMessage:
    """The digest e-mail, in the recipient's language. Never names an arm: it lists study IDs,
    visits and windows, and the protocol refuses arm-specific visits in blinded trials. Each
    section lists its first ``SECTION_LIMIT`` visits and counts the rest."""
    by_kind: dict[str, list[DigestItem]] = defaultdict(list)
    trials: dict[str, str] = {}
    for item in items:
        by_kind[item.kind].append(item)
        trials[item.trial_slug] = item.trial_title
    total = sum(len(v) for v in by_kind.values())
    with translation.override(language_of(user)):
        titles = {ReminderKind.OVERDUE: _("Window closed, visit not done"),
                  ReminderKind.CLOSES_SOON: _("Window closes within 2 days"),
                  ReminderKind.OPENS_SOON: _("Window opens within 7 days")}
        sections = []
        for kind in KIND_ORDER:
            listed = sorted(by_kind.get(kind, []), key=lambda i: (
                i.trial_title, i.site_code, i.window_closes, i.study_id, i.code, i.occurrence))
            if not listed:
                continue
            sections.append({
                "kind": kind, "title": titles[kind],
                "visits": [{"visit": i, "when": _when(i), "url": _absolute(reverse(
                    "visit_timeline", args=[i.trial_slug, i.study_id]))}
                    for i in listed[:SECTION_LIMIT]],
                "more": max(0, len(listed) - SECTION_LIMIT),
            })
        worklists = [{"title": title, "url": _absolute(reverse("visit_worklist", args=[slug]))}
                     for slug, title in sorted(trials.items(), key=lambda t: t[1])]
        subject = ngettext("%(n)d visit needs attention", "%(n)d visits need attention",
                           total) % {"n": total}
        body = render_to_string("patients/email/visit_digest.txt", {
            "user": user, "today": today, "sections": sections, "total": total,
            "worklists": worklists})
    return EmailMessage(f"[CTMS] {subject}", body, settings.DEFAULT_FROM_EMAIL, [user.email],
                        headers={"X-CTMS-Digest": f"visits {today:%Y-%m-%d}"})
