"""The SAE clock: 24 hours from the site's awareness; a reminder 12 hours before, an
escalation after, each sent exactly once. Time travels (time-machine); nothing sleeps."""
from __future__ import annotations

import datetime as dt
import io

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from safety import reminders, selectors, services, tasks
from safety.models import SAEReminder
from tests.safety.conftest import PASSWORD, complete_values


def run_job():
    return tasks.check_sae_clock.delay().get()


def test_reminder_before_the_deadline_and_escalation_after_each_once(world, sae):
    start = sae.aware_at
    mail.outbox.clear()
    with time_machine.travel(start + dt.timedelta(hours=6), tick=False):
        assert run_job() == {"new": 0, "pending": 0}
        clock = selectors.clock(sae)
        assert clock.hours_left == 18.0 and clock.late_by is None
    with time_machine.travel(start + dt.timedelta(hours=13), tick=False):
        assert run_job() == {"new": 1, "pending": 1}
        assert run_job() == {"new": 0, "pending": 0}  # exactly once
    [due_soon] = mail.outbox
    assert sae.number in due_soon.subject and world["investigator"].email in due_soon.to
    assert world["officer"].email not in due_soon.to
    with time_machine.travel(start + dt.timedelta(hours=25), tick=False):
        assert run_job()["new"] == 1
        run_job()
        worklist = selectors.worklist(world["officer"], world["trial"])
        [overdue] = worklist.overdue
        assert overdue.hours_late == 1.0
    assert len(mail.outbox) == 2
    escalation = mail.outbox[1]
    assert "Overdue" in escalation.subject
    assert {world["officer"].email, world["investigator"].email} <= set(escalation.to)
    assert world["sponsor"].email not in escalation.to
    arm_labels = [a.label for a in world["trial"].arms.all()]
    for message in mail.outbox:
        assert not any(label in message.body for label in arm_labels)
    assert SAEReminder.objects.filter(sent_at__isnull=False).count() == 2


def test_a_report_signed_late_is_listed_with_how_late(world, sae):
    with time_machine.travel(sae.aware_at + dt.timedelta(hours=30), tick=False):
        services.save_draft(sae, complete_values(sae), by=world["investigator"])
        services.sign_version(sae.versions.get(), by=world["investigator"], password=PASSWORD)
        worklist = selectors.worklist(world["investigator"], world["trial"])
    [late] = worklist.late
    assert late.hours_late == 6.0 and worklist.overdue == []


def test_a_report_signed_in_time_is_not_reminded(world, sae):
    services.save_draft(sae, complete_values(sae), by=world["investigator"])
    services.sign_version(sae.versions.get(), by=world["investigator"], password=PASSWORD)
    mail.outbox.clear()
    with time_machine.travel(sae.aware_at + dt.timedelta(hours=30), tick=False):
        assert run_job() == {"new": 0, "pending": 0}
    assert mail.outbox == []


def test_a_claimed_reminder_is_not_sent_by_another_task(world, sae):
    with time_machine.travel(sae.aware_at + dt.timedelta(hours=13), tick=False):
        reminders.detect(timezone.now())
        reminder = SAEReminder.objects.get()
        assert reminders.claim(reminder.pk, "task-a") == 1
        assert reminders.send(reminder.pk, token="task-b") == 0
        assert reminders.send(reminder.pk, token="task-a") == 1
    assert len(mail.outbox) == 1


def test_a_failed_send_releases_the_claim_for_a_retry(world, sae, settings, monkeypatch):
    from django.core.mail import EmailMessage

    def fail(self, *args, **kwargs):
        raise OSError("mail server down")
    with time_machine.travel(sae.aware_at + dt.timedelta(hours=13), tick=False):
        reminders.detect(timezone.now())
        reminder = SAEReminder.objects.get()
        monkeypatch.setattr(EmailMessage, "send", fail)
        with pytest.raises(OSError):
            reminders.send(reminder.pk, token="t1")
        reminder.refresh_from_db()
        assert reminder.sent_at is None and reminder.claimed_by == "" and reminder.attempts == 1
        monkeypatch.undo()
        assert reminders.send(reminder.pk, token="t2") == 1


def test_the_command_runs_the_clock_in_process(world, sae):
    from django.core.management import call_command

    with time_machine.travel(sae.aware_at + dt.timedelta(hours=25), tick=False):
        call_command("check_sae_clock", stdout=io.StringIO())
        call_command("check_sae_clock", stdout=io.StringIO())
    assert [m.subject for m in mail.outbox if "Overdue" in m.subject] != []
    assert len(mail.outbox) == 1
