"""Run the daily visit reminder job now, in this process (the demo, or an operator catching up
after an outage). Safe to run any number of times: a reminder already sent is never sent again.
"""
import datetime as dt
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from patients import reminders


class Command(BaseCommand):
    help = ("Send today's visit reminder digests now (one e-mail per person; reminders already "
            "sent are not sent again).")

    def add_arguments(self, parser):
        parser.add_argument("--date", help="run as if today were this day (YYYY-MM-DD)")

    def handle(self, *args, date=None, **options):
        try:
            today = dt.date.fromisoformat(date) if date else timezone.localdate()
        except ValueError:
            raise CommandError(f"--date {date!r} is not a date: use YYYY-MM-DD.") from None
        token = f"command-{uuid.uuid4()}"
        sent = []

        def send(user_id: int) -> None:
            sent.append(reminders.send_digest(user_id, today=today, token=token))

        result = reminders.run(today, send)
        self.stdout.write(
            f"{today:%Y-%m-%d}: {result.reminders} new reminder(s), {result.deliveries} "
            f"deliveries; {sum(1 for n in sent if n)} digest(s) sent to "
            f"{result.recipients} recipient(s) waiting.")
