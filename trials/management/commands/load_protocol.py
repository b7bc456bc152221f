from django.core.management.base import BaseCommand, CommandError

from trials.protocol import ProtocolError
from trials.services import load_protocol, shipped_protocol_files


class Command(BaseCommand):
    help = (
        "Validate and load protocol files (default: every file shipped in trials/protocols/). "
        "Loading the same content twice changes nothing; changed content becomes a new version."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="*", help="protocol YAML files")

    def handle(self, *args, files, **options):
        paths = files or shipped_protocol_files()
        if not paths:
            raise CommandError("No protocol files given and none shipped in trials/protocols/.")
        for path in paths:
            try:
                result = load_protocol(path)
            except ProtocolError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(str(result))
            for warning in result.warnings:  # loaded all the same: the file's author decides
                self.stdout.write(self.style.WARNING(f"  warning: {path}: {warning}"))
