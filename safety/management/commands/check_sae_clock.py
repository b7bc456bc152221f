"""Run the SAE clock once, in-process (without Redis: the embedded demo); safe to repeat."""
import uuid

from django.core.management.base import BaseCommand
from django.utils import timezone

from safety import reminders


class Command(BaseCommand):
    help = "Remind of SAE reports due within 12 hours and escalate overdue ones (each once)."

    def handle(self, *args, **options):
        new, pending = reminders.run(
            timezone.now(), lambda pk: reminders.send(pk, token=f"command-{uuid.uuid4()}"))
        self.stdout.write(f"{new} new SAE reminder(s), {pending} to send")
