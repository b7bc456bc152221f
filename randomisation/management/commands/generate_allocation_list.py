from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from randomisation import services
from trials.models import Trial


class Command(BaseCommand):
    help = ("Generate a draft allocation list for a trial from a recorded seed (or a fresh one), "
            "as the named unblinded statistician; --seal seals and activates it.")

    def add_arguments(self, parser):
        parser.add_argument("trial", help="trial slug")
        parser.add_argument("--by", required=True, help="username of the statistician")
        parser.add_argument("--seed", default="", help="seed to record (default: a fresh one)")
        parser.add_argument("--slots", type=int, help="slots per stratum (default: the protocol's)")
        parser.add_argument("--seal", action="store_true", help="seal and activate the list")

    def handle(self, *args, trial, by, seed, slots, seal, **options):
        trial_obj = Trial.objects.filter(slug=trial).first()
        if trial_obj is None:
            raise CommandError(f"No trial {trial!r}.")
        user = get_user_model().objects.filter(username=by).first()
        if user is None:
            raise CommandError(f"No user {by!r}.")
        try:
            alist = services.generate_list(trial_obj, by=user, seed=seed, slots_per_stratum=slots)
            if seal:
                alist = services.seal_and_activate(alist, by=user)
        except (PermissionDenied, ValidationError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from None
        self.stdout.write(f"{trial}: list #{alist.number} ({alist.status}), seed {alist.seed}"
                          + (f", SHA-256 {alist.digest}" if alist.digest else ""))
