"""Print the current two-factor code of a demo account (its device has the published demo
secret). Refuses for any other device: real accounts' codes are never printed."""
from base64 import b32decode

from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import DEMO_DEVICE_NAME, current_code

from .demo_setup import DEMO_TOTP_SECRET


class Command(BaseCommand):
    help = "Print the current TOTP code of a demo account (demo devices only)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        demo_key = b32decode(DEMO_TOTP_SECRET).hex()
        device = TOTPDevice.objects.filter(user__username=username, name=DEMO_DEVICE_NAME,
                                           confirmed=True).first()
        if device is None or device.key != demo_key:
            raise CommandError(f"{username!r} has no demo two-factor device: codes are printed "
                               "for demo accounts only.")
        self.stdout.write(current_code(device))
