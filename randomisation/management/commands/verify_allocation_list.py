from django.core.management.base import BaseCommand, CommandError

from randomisation import services
from randomisation.models import AllocationList


class Command(BaseCommand):
    help = ("Recompute the SHA-256 of sealed allocation lists from the stored slots and compare "
            "it with the digest recorded when they were sealed, and check every allocation "
            "against its slot (arm, kit code, stratum, order). Exit status 1 on any mismatch "
            "or tampered allocation, each reported with its participant's study ID.")

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
                self.stdout.write(f"list #{alist.number}: OK {result.stored}; "
                                  f"allocations match their slots")
                continue
            bad += 1
            if result.seal_ok:
                self.stdout.write(f"list #{alist.number}: seal OK {result.stored}")
            else:
                self.stdout.write(f"list #{alist.number}: MISMATCH sealed {result.stored}, "
                                  f"now {result.computed}")
            for problem in result.problems:
                self.stdout.write(f"list #{alist.number}: TAMPERED ALLOCATION {problem}")
        if bad:
            raise CommandError(f"{bad} list(s) do not match their seal or their allocations "
                               f"do not match their slots.", returncode=1)
