"""Bring every participant not yet randomised in line with their eligibility form, once, after
upgrading to the version where a completed form with a criterion not met makes a screen
failure (issue 17). Before it, such participants stayed "screened". Each change goes through
the same service as a save of the form (history and audit log). Safe to run again: a
participant already in line is not touched."""
from django.core.management.base import BaseCommand
from django.db import transaction

from crfs.eligibility import ELIGIBILITY_CRF
from crfs.models import CRFRecord, CRFStatus
from crfs.screening import apply_eligibility
from patients.models import Participant, Status


class Command(BaseCommand):
    help = ("Set participants whose completed eligibility form has a criterion not met to "
            "'screen failure' (and back to 'screened' where every criterion is met).")

    def handle(self, *args, **options):
        records = (CRFRecord.objects
                   .filter(crf_code=ELIGIBILITY_CRF, visit__isnull=True,
                           participant__status__in=[Status.SCREENED, Status.SCREEN_FAILED])
                   .exclude(status=CRFStatus.DRAFT).select_related("participant"))
        before = dict(Participant.objects.filter(
            pk__in=records.values("participant_id")).values_list("pk", "status"))
        for record in records.iterator():
            with transaction.atomic():
                apply_eligibility(record, by=None,
                                  why="status brought in line with the eligibility form")
        after = dict(Participant.objects.filter(pk__in=before).values_list("pk", "status"))
        changed = sum(1 for pk, status in after.items() if before[pk] != status)
        self.stdout.write(f"{len(before)} participant(s) with a completed eligibility form "
                          f"checked; {changed} status(es) changed.")
