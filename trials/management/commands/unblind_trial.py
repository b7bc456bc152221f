"""Break a blinded trial's blind at its end (``trials.services.unblind_trial``): arms are then
shown to every member of the trial. Asks for the statistician's password unless given."""
import getpass

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from trials.models import Trial
from trials.services import unblind_trial


class Command(BaseCommand):
    help = "Unblind a blinded trial at its end (statistician or superuser; audited)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--by", required=True, help="username of the statistician")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--password", help="default: asked on the terminal")

    def handle(self, *args, slug, by, reason, password=None, **options):
        trial = Trial.objects.filter(slug=slug).first()
        if trial is None:
            raise CommandError(f"No trial {slug!r}.")
        user = get_user_model().objects.filter(username=by).first()
        if user is None:
            raise CommandError(f"No user {by!r}.")
        if password is None:
            password = getpass.getpass(f"Password of {by}: ")
        try:
            trial = unblind_trial(trial, by=user, reason=reason, password=password)
        except (PermissionDenied, ValidationError) as exc:
            messages = getattr(exc, "messages", None) or [str(exc)]
            raise CommandError("; ".join(messages))
        self.stdout.write(f"{trial.short_title}: unblinded at {trial.unblinded_at:%Y-%m-%d %H:%M} "
                          "UTC; arms are shown to every member.")
