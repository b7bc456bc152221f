"""Check, for every participant, that the records showing each protocol event agree
(``crfs.agreement``): queries are raised, closed or re-opened as a CRF save would. For data
entered before the protocol version that declares ``events[].shown_by``; safe to run again."""
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from crfs.agreement import reconcile
from patients.models import Participant
from trials.models import Trial


class Command(BaseCommand):
    help = "Raise or close the automatic queries on records that disagree on an event."

    def add_arguments(self, parser):
        parser.add_argument("--trial", help="a trial's slug (default: every trial)")

    def handle(self, *args, trial=None, **options):
        participants = Participant.objects.all()
        if trial is not None:
            found = Trial.objects.filter(slug=trial).first()
            if found is None:
                raise CommandError(f"No trial {trial!r}.")
            participants = participants.filter(trial=found)
        raised = closed = reopened = count = 0
        for participant in participants.order_by("pk").iterator():
            with transaction.atomic():
                result = reconcile(participant)
            raised, closed = raised + result.raised, closed + result.closed
            reopened += result.reopened
            count += 1
        self.stdout.write(f"{count} participants checked: {raised} queries raised, "
                          f"{closed} closed, {reopened} re-opened.")
