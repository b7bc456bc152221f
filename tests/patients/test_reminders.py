"""The daily reminder job: found set-wise, one digest per person in their language, each
reminder sent exactly once — run twice, failed sends, killed workers, Redis down."""
from __future__ import annotations

import datetime as dt
import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import formats, timezone, translation

from accounts.models import Profile
from config.celery import app
from patients import reminders, tasks
from patients.models import ReminderDelivery, ReminderKind, Visit, VisitReminder, VisitStatus
from tests import factories
from tests.randomisation.test_blinding import assert_no_arm
from trials.models import Membership

TODAY = timezone.localdate


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def run(today: dt.date | None = None) -> dict:
    return tasks.send_visit_reminders.delay((today or TODAY()).isoformat()).get()


@pytest.fixture
def site_staff(rectal, rectal_site, make_user):
    """Who works where: two people at the first site, one elsewhere, others with no reminders."""
    second = rectal.sites.order_by("code")[1]
    staff = {
        "coordinator": make_user("coordinator", rectal, rectal_site, first_name="Camille"),
        "investigator": make_user("investigator", rectal, rectal_site, first_name="Irène"),
        "elsewhere": make_user("investigator", rectal, second),
        "all_sites": make_user("coordinator", rectal),
        "data_manager": make_user("data_manager", rectal),
        "sponsor": make_user("sponsor", rectal),
        "inactive": make_user("coordinator", rectal, rectal_site),
        "no_email": make_user("investigator", rectal, rectal_site),
    }
    Membership.objects.filter(user=staff["inactive"]).update(active=False)
    staff["no_email"].email = ""
    staff["no_email"].save(update_fields=["email"])
    return staff


@pytest.fixture
def overdue_participant(rectal, rectal_coordinator, rectal_site, site_staff):
    """Randomised 60 days ago at the first site: baseline and surgery overdue."""
    return factories.randomised(rectal, rectal_site, by=rectal_coordinator, days_ago=60)


def digests_to(user) -> list:
    return [m for m in mail.outbox if m.to == [user.email]]


def test_one_digest_per_person_of_the_site_listing_every_visit(overdue_participant, site_staff,
                                                               rectal_coordinator):
    result = run()
    tell = [site_staff["coordinator"], site_staff["investigator"], site_staff["all_sites"],
            rectal_coordinator]
    assert sorted(m.to[0] for m in mail.outbox) == sorted(u.email for u in tell)
    assert result["recipients"] == len(tell)
    overdue = Visit.objects.filter(participant=overdue_participant, code__in=["baseline",
                                                                             "surgery"])
    for user in tell:
        [message] = digests_to(user)
        assert "2 visits need attention" in message.subject
        for visit in overdue:
            assert visit.label in message.body
        assert overdue_participant.study_id in message.body
        assert f"/trials/rectal-resection/participants/{overdue_participant.study_id}/visits/" \
            in message.body
    for name in ("elsewhere", "data_manager", "sponsor", "inactive", "no_email"):
        assert not digests_to(site_staff[name]), name


def test_running_the_job_twice_sends_nothing_twice(overdue_participant, site_staff):
    result = run()
    first = len(mail.outbox)
    rows = (VisitReminder.objects.count(), ReminderDelivery.objects.count())
    assert first and rows[0] == 2
    assert (result["reminders"], result["deliveries"]) == rows, "counted as written"
    for _ in range(2):
        result = run()
        assert (result["reminders"], result["deliveries"]) == (0, 0), "nothing new"
    assert len(mail.outbox) == first
    assert (VisitReminder.objects.count(), ReminderDelivery.objects.count()) == rows
    assert not ReminderDelivery.objects.filter(sent_at=None).exists()


def test_each_kind_is_found_on_its_day(overdue_participant, site_staff):
    fu2 = Visit.objects.get(participant=overdue_participant, code="follow_up", occurrence=2)

    def kinds_on(day):
        VisitReminder.objects.filter(visit=fu2).delete()  # only to probe several days here
        reminders.detect(day, now=timezone.now())
        return set(VisitReminder.objects.filter(visit=fu2).values_list("kind", flat=True))

    assert kinds_on(fu2.window_opens - days(8)) == set()
    assert kinds_on(fu2.window_opens - days(7)) == {ReminderKind.OPENS_SOON}
    assert kinds_on(fu2.window_opens - days(1)) == {ReminderKind.OPENS_SOON}
    assert kinds_on(fu2.window_opens) == set()  # open, not closing yet
    assert kinds_on(fu2.window_closes - days(3)) == set()
    assert kinds_on(fu2.window_closes - days(2)) == {ReminderKind.CLOSES_SOON}
    assert kinds_on(fu2.window_closes) == {ReminderKind.CLOSES_SOON}
    assert kinds_on(fu2.window_closes + days(1)) == {ReminderKind.OVERDUE}


def test_a_visit_done_before_the_digest_leaves_is_not_reminded(overdue_participant, site_staff,
                                                                rectal_coordinator):
    from scheduling import services as scheduling

    reminders.raise_reminders(TODAY())
    baseline = Visit.objects.get(participant=overdue_participant, code="baseline")
    scheduling.record_visit_done(baseline, done_on=TODAY(), by=rectal_coordinator)
    run()
    [message] = digests_to(site_staff["coordinator"])
    assert "1 visit needs attention" in message.subject
    assert "Primary tumour resection" in message.body
    assert "Baseline" not in message.body
    assert ReminderDelivery.objects.filter(reminder__visit=baseline,
                                           withdrawn_at__isnull=False).count() == 4


def test_the_job_is_set_wise(rectal, rectal_site, rectal_coordinator, site_staff,
                             django_assert_num_queries):
    factories.randomised(rectal, rectal_site, by=rectal_coordinator, days_ago=60)

    def job_queries(day) -> int:
        with CaptureQueriesContext(connection) as queries:
            run(day)
        return len(queries.captured_queries)

    small = job_queries(TODAY())
    mail.outbox.clear()
    # Ten times the participants, same people to tell: the same number of queries.
    for _ in range(10):
        factories.randomised(rectal, rectal_site, by=rectal_coordinator, days_ago=80)
    Visit.objects.filter(participant__site=rectal_site).update(status=VisitStatus.PLANNED,
                                                               done_on=None)
    ReminderDelivery.objects.update(sent_at=timezone.now())
    large = job_queries(TODAY() + days(1))
    assert VisitReminder.objects.count() > 20
    assert large == small, (small, large)
    assert len(mail.outbox) == 4, "still one digest per person"
    # Finding the reminders and their recipients, however many: a read of candidate visits per
    # kind, one of the new reminders, one of the staff, two inserts each counted before and
    # after (in a savepoint here).
    ReminderDelivery.objects.all().delete()
    VisitReminder.objects.all().delete()
    with django_assert_num_queries(13):
        found, told = reminders.raise_reminders(TODAY() + days(2))
    assert found == VisitReminder.objects.count() > 20
    assert told == ReminderDelivery.objects.count() == 4 * found


def test_digest_in_french_for_a_french_speaker(overdue_participant, site_staff):
    Profile.objects.create(user=site_staff["investigator"], language="fr")
    run()
    [french] = digests_to(site_staff["investigator"])
    [english] = digests_to(site_staff["coordinator"])
    assert "2 visites à traiter" in french.subject
    assert "Bonjour Irène," in french.body
    assert "Fenêtre fermée, visite non faite" in french.body
    assert "prévue le" in french.body and "fenêtre du" in french.body
    surgery = Visit.objects.get(participant=overdue_participant, code="surgery")
    assert f"{surgery.target_date:%d/%m/%Y}" in french.body  # the one French date format
    assert "2 visits need attention" in english.subject
    assert "Hello Camille," in english.body and "Window closed, visit not done" in english.body
    with translation.override("en"):
        assert formats.date_format(surgery.target_date, "DATE_FORMAT") in english.body


def test_a_reminet_digest_never_names_the_arm(reminet, reminet_coordinator, make_user):
    investigator = make_user("investigator", reminet, reminet.sites.order_by("code").first())
    for _ in range(2):  # one per arm (the list alternates)
        factories.randomised(reminet, by=reminet_coordinator, days_ago=40)
    run()
    [message] = digests_to(investigator)
    assert_no_arm(reminet, message.subject + message.body, "REMINET digest")
    assert "Baseline" in message.body


class FailingOnce(EmailBackend):
    """The locmem backend, but the SMTP server refuses the first message."""

    failures = 0

    def send_messages(self, messages):
        if FailingOnce.failures:
            FailingOnce.failures -= 1
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


@pytest.fixture
def flaky_smtp(settings):
    """The failing backend, and eager tasks that retry as a worker would: with eager errors
    propagated (the suite's default) Celery raises the retry instead of running it."""
    settings.EMAIL_BACKEND = f"{__name__}.FailingOnce"
    previous = app.conf.CELERY_TASK_EAGER_PROPAGATES
    app.conf.CELERY_TASK_EAGER_PROPAGATES = False
    yield FailingOnce
    app.conf.CELERY_TASK_EAGER_PROPAGATES = previous
    FailingOnce.failures = 0


def test_a_failed_send_is_retried_and_sent_once(overdue_participant, site_staff, flaky_smtp):
    flaky_smtp.failures = 1
    run()
    assert len(digests_to(site_staff["coordinator"])) == 1
    assert len(mail.outbox) == 4, "the retry sent the failed digest; nobody got two"
    assert not ReminderDelivery.objects.filter(sent_at=None).exists()
    assert ReminderDelivery.objects.filter(attempts=2).count() == 2, "one digest took two tries"


def test_a_send_that_keeps_failing_is_not_marked_sent_and_goes_out_next_run(
        overdue_participant, site_staff, flaky_smtp):
    flaky_smtp.failures = 10**6
    run()  # every digest fails, retries exhausted: logged, nothing marked sent
    assert not mail.outbox
    rows = ReminderDelivery.objects.all()
    assert rows and all(r.sent_at is None and "SMTPServerDisconnected" in r.last_error
                        and r.attempts == tasks.send_reminder_digest.max_retries + 1
                        and r.claimed_by == "" for r in rows)
    flaky_smtp.failures = 0
    run()
    assert len(mail.outbox) == 4
    assert not ReminderDelivery.objects.filter(sent_at=None).exists()


def test_the_digest_task_retries_smtp_failures_with_back_off():
    task = tasks.send_reminder_digest
    assert smtplib.SMTPException in task.autoretry_for and OSError in task.autoretry_for
    assert task.retry_backoff == 60 and task.retry_backoff_max == 3600 and task.retry_jitter
    assert task.max_retries >= 5


def test_a_worker_killed_mid_send_loses_nothing(overdue_participant, site_staff):
    reminders.raise_reminders(TODAY())
    coordinator = site_staff["coordinator"]
    # A worker claimed this person's rows, then died before sending.
    assert reminders.claim(coordinator.pk, "dead-worker") == 2
    run()
    assert not digests_to(coordinator), "a live claim is respected"
    assert len(mail.outbox) == 3
    ReminderDelivery.objects.filter(claimed_by="dead-worker").update(
        claimed_at=timezone.now() - reminders.CLAIM_LEASE - days(0) - dt.timedelta(minutes=1))
    run()
    [message] = digests_to(coordinator)
    assert "2 visits need attention" in message.subject
    assert len(mail.outbox) == 4


def test_beat_runs_the_job_daily_at_seven_paris_time(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["visit-reminders"]
    assert entry["task"] == tasks.send_visit_reminders.name
    schedule = entry["schedule"]
    assert schedule.hour == {7} and schedule.minute == {0}
    assert settings.CELERY_TIMEZONE == "Europe/Paris"
    assert tasks.send_visit_reminders.name in app.tasks


def test_the_command_runs_the_job_now(overdue_participant, site_staff):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("send_visit_reminders", stdout=out)
    assert "4 digest(s) sent" in out.getvalue()
    call_command("send_visit_reminders", stdout=out)
    assert len(mail.outbox) == 4


def test_redis_down_breaks_no_page(reminet, make_user, client, redis_down,
                                   django_capture_on_commit_callbacks, client_for):
    """A page whose action enqueues mail (emergency unblinding) still succeeds when the broker
    is unreachable: the error is logged and the mail goes out from the web process."""
    from django.urls import reverse

    from randomisation import services
    from tests.conftest import PASSWORD

    statistician = make_user("statistician", reminet)
    make_user("sponsor", reminet)
    factories.sealed_list(reminet, by=statistician)
    coordinator = make_user("coordinator", reminet, reminet.sites.order_by("code").first())
    p = factories.eligible_participant(reminet, by=coordinator)
    services.randomise(p, by=coordinator)
    client_for(make_user("investigator", reminet, p.site))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("emergency_unblind", args=[reminet.slug, p.study_id]),
                               {"reason": "Anaphylaxis", "password": PASSWORD})
    assert response.status_code == 302
    assert any("Emergency unblinding" in m.subject for m in mail.outbox)


def test_enqueue_survives_a_real_unreachable_broker(tmp_path):
    """The real thing, in a process of its own: a broker URL nobody listens on."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import django; django.setup()\n"
        "from core.notify import enqueue, send_notification\n"
        "queued = enqueue(send_notification, ['a@example.org'], 'Subject', 'Body')\n"
        "print('QUEUED' if queued else 'SENT IN PROCESS')\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base",
           "CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "EMAIL_URL": "consolemail://",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert "SENT IN PROCESS" in result.stdout and "Subject: Subject" in result.stdout
    assert "broker unreachable" in result.stderr


def test_a_site_with_nobody_to_tell_is_reminded_once_someone_is(rectal, statistician, make_user):
    factories.scripted_list(rectal, by=statistician, arms=["A", "B"])
    third = rectal.sites.order_by("code")[2]
    data_entry = make_user("coordinator", rectal, third)
    p = factories.randomised(rectal, third, by=data_entry, days_ago=60)
    Membership.objects.filter(user=data_entry).update(active=False)  # they left the site
    run()
    assert not mail.outbox and not VisitReminder.objects.exists()
    newcomer = make_user("investigator", rectal, third)
    run()
    [message] = digests_to(newcomer)
    assert p.study_id in message.body and "2 visits need attention" in message.subject


def test_overdue_visits_are_reminded_for_90_days_then_left_to_the_worklist(
        overdue_participant, site_staff, rectal, rectal_coordinator):
    baseline = Visit.objects.get(participant=overdue_participant, code="baseline")
    late = baseline.window_closes + days(reminders.OVERDUE_LOOKBACK_DAYS + 1)
    reminders.raise_reminders(late)
    assert not VisitReminder.objects.filter(visit=baseline).exists()
    from patients import selectors

    assert baseline in selectors.worklist(rectal_coordinator, rectal, today=late).overdue
    reminders.raise_reminders(late - days(1))
    assert VisitReminder.objects.filter(visit=baseline, kind=ReminderKind.OVERDUE).exists()
