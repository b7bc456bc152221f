from django.core.management.base import BaseCommand, CommandError

from randomisation import services
from randomisation.models import AllocationList


class Command(BaseCommand):
    help = ("Recompute the SHA-256 of sealed allocation lists from the stored slots and compare "
            "it with the digest recorded when they were sealed. Exit status 1 on any mismatch.")

    def add_arguments(self, parser):
        parser.add_argument("trial", help="trial slug")
        parser.add_argument("--list", type=int, dest="number", help="list number (default: all sealed)")

    def handle(self, *args, trial, number, **options):
        lists = AllocationList.objects.filter(trial__slug=trial).exclude(digest="")
        if number is not None:
            lists = lists.filter(number=number)
        if not lists.exists():
            raise CommandError(f"No sealed allocation list for {trial!r}"
                               + (f" with number {number}" if number is not None else "") + ".")
        bad = 0
        for alist in lists.order_by("number"):
            result = services.verify_list(alist)
            if result.ok:
                self.stdout.write(f"list #{alist.number}: OK {result.stored}")
            else:
                bad += 1
                self.stdout.write(f"list #{alist.number}: MISMATCH sealed {result.stored}, "
                                  f"now {result.computed}")
        if bad:
            raise CommandError(f"{bad} list(s) do not match their seal.", returncode=1)
