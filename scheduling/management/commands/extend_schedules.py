"""Create the visits that came within the planning horizon now, in this process (the demo, or an
operator catching up after an outage). Safe to run any number of times."""
import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from scheduling import services as scheduling


class Command(BaseCommand):
    help = ("Create the visits that now fall within the planning horizon "
            "(SCHEDULE_PLANNING_MONTHS ahead); the daily beat job does the same.")

    def add_arguments(self, parser):
        parser.add_argument("--date", help="run as if today were this day (YYYY-MM-DD)")

    def handle(self, *args, date=None, **options):
        try:
            today = dt.date.fromisoformat(date) if date else timezone.localdate()
        except ValueError:
            raise CommandError(f"--date {date!r} is not a date: use YYYY-MM-DD.") from None
        created = scheduling.extend_schedules(today)
        self.stdout.write(f"{today:%Y-%m-%d}: {created} visit(s) created.")
