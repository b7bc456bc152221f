"""Visit reminders: found set-wise once a day, told once, in one digest per person.

The daily job (``patients.tasks.send_visit_reminders``, Celery beat at 07:00) runs
``raise_reminders`` and then one ``send_digest`` per recipient. Why each reminder is sent
exactly once:

1. ``detect`` writes one ``VisitReminder`` row per planned visit that needs one — window opens
   within 7 days, closes within 2 days, or closed without the visit done (in the last 90 days:
   ``OVERDUE_LOOKBACK_DAYS``) — in one
   ``INSERT … SELECT … ON CONFLICT DO NOTHING``. The unique (visit, kind) constraint makes a
   second run, or a concurrent one, insert nothing: the row exists before any mail leaves.
2. ``fan_out`` writes one ``ReminderDelivery`` per new reminder and recipient (the
   investigators and coordinators of the visit's site, as ``policy`` says: memberships at that
   site or at all sites), unique per (reminder, recipient), in one more statement, in the same
   transaction as step 1: a crash between the two leaves neither.
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
statements plus a few per recipient. Written in SQL where the ORM cannot express it (an
``INSERT … SELECT``); the SQL is standard and runs on PostgreSQL and SQLite alike.
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
from django.db import connection, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _, ngettext

from trials import policy
from trials.models import Membership, Site
from trials.policy import Perm

from .models import Participant, ReminderDelivery, ReminderKind, Visit, VisitReminder, VisitStatus

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


def _tables() -> dict[str, str]:
    User = get_user_model()
    return {"visit": Visit._meta.db_table, "reminder": VisitReminder._meta.db_table,
            "site": Site._meta.db_table,
            "delivery": ReminderDelivery._meta.db_table,
            "participant": Participant._meta.db_table,
            "membership": Membership._meta.db_table, "user": User._meta.db_table}


def _staff_sql(t: dict[str, str], roles: list[str]) -> str:
    """Who is told about a site's visits: active investigators and coordinators (``policy``:
    the roles with ``VISIT_REMINDERS``) of the trial, at that site or at all its sites, with an
    e-mail address. Columns: trial_id, site_id (NULL: all sites), user_id."""
    return f"""
        SELECT m.trial_id, m.site_id, m.user_id
          FROM {t['membership']} m JOIN {t['user']} u ON u.id = m.user_id
         WHERE m.active = %s AND m.role IN ({', '.join(['%s'] * len(roles))})
           AND u.is_active = %s AND u.email <> ''"""


@transaction.atomic
def raise_reminders(today: dt.date) -> tuple[int, int]:
    """Write today's reminders and their deliveries, all or nothing (two statements).

    Returns (new reminders, new deliveries). A reminder is raised only for a site with
    someone to tell; until then the visit stays a candidate, so a coordinator appointed
    later still hears of an overdue visit.
    """
    now = timezone.now()
    return detect(today, now=now), fan_out(now)


def detect(today: dt.date, *, now: dt.datetime) -> int:
    """Write a ``VisitReminder`` for every planned visit that needs one on ``today`` and has
    someone to tell (one statement); returns how many rows are new."""
    t = _tables()
    roles = policy.roles_with(Perm.VISIT_REMINDERS)
    day = connection.ops.adapt_datefield_value
    planned = VisitStatus.PLANNED.value
    # Each branch reads a date range of planned visits (partial indexes), joined to the (few)
    # sites with someone to tell. Visits already reminded of a kind are skipped by ON CONFLICT
    # on the unique (visit, kind) index: the same index settles a race with a concurrent run,
    # and it behaves the same whatever the planner's statistics (an anti-join against the
    # table being filled does not: on a first run it can scan the growing table per row).
    branch = f"""
        SELECT v.id, %s, %s FROM {t['visit']} v
          JOIN {t['participant']} p ON p.id = v.participant_id
          JOIN staffed ON staffed.site_id = p.site_id
         WHERE v.status = %s AND {{window}}"""
    sql = (f"""
        WITH staff AS ({_staff_sql(t, roles)}),
        staffed AS (
            SELECT s.id AS site_id FROM {t['site']} s
             WHERE EXISTS (SELECT 1 FROM staff WHERE staff.trial_id = s.trial_id
                              AND (staff.site_id = s.id OR staff.site_id IS NULL)))
        INSERT INTO {t['reminder']} (visit_id, kind, created_at)"""
           + branch.format(window="v.window_opens > %s AND v.window_opens <= %s")
           + " UNION ALL" + branch.format(window="v.window_closes >= %s AND v.window_closes <= %s")
           + " UNION ALL" + branch.format(window="v.window_closes >= %s AND v.window_closes < %s")
           + " ON CONFLICT DO NOTHING")
    params: list = [True, *roles, True]
    stamp = connection.ops.adapt_datetimefield_value(now)
    for kind, bounds in (
            (ReminderKind.OPENS_SOON, [today, today + dt.timedelta(days=OPENS_WITHIN_DAYS)]),
            (ReminderKind.CLOSES_SOON, [today, today + dt.timedelta(days=CLOSES_WITHIN_DAYS)]),
            (ReminderKind.OVERDUE, [today - dt.timedelta(days=OVERDUE_LOOKBACK_DAYS), today])):
        params += [kind.value, stamp, planned, *map(day, bounds)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


def fan_out(now: dt.datetime) -> int:
    """One ``ReminderDelivery`` per reminder raised at ``now`` and per person to tell (one
    statement). The new reminders are read first (``todo``, materialised on PostgreSQL so the
    plan starts from them, whatever the statistics say), then joined to the staff twice —
    site members, all-sites members — so that both joins are plain equi-joins."""
    t = _tables()
    roles = policy.roles_with(Perm.VISIT_REMINDERS)
    materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
    members = """
        SELECT todo.reminder_id, staff.user_id FROM todo
          JOIN staff ON staff.trial_id = todo.trial_id AND {site}"""
    sql = f"""
        WITH staff AS ({_staff_sql(t, roles)}),
        todo AS {materialized} (
            SELECT r.id AS reminder_id, p.trial_id, p.site_id
              FROM {t['reminder']} r
              JOIN {t['visit']} v ON v.id = r.visit_id
              JOIN {t['participant']} p ON p.id = v.participant_id
             WHERE r.created_at = %s)
        INSERT INTO {t['delivery']}
               (reminder_id, recipient_id, created_at, claimed_by, attempts, last_error)
        SELECT reminder_id, user_id, %s, '', 0, '' FROM (
            {members.format(site="staff.site_id = todo.site_id")}
            UNION
            {members.format(site="staff.site_id IS NULL")}
        ) AS recipients
         WHERE true
        ON CONFLICT DO NOTHING
    """
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, [True, *roles, True, stamp, stamp])
        return max(cursor.rowcount, 0)


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
    """"due 3 March 2027, window …", dates in the active language's long format."""
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
