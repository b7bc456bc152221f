from django.core.management.base import BaseCommand, CommandError

from trials.services import load_terminology
from trials.terminology import (TerminologyError, shipped_terminology_codes,
                                shipped_terminology_file)


class Command(BaseCommand):
    help = (
        "Check and load the NCI-CTCAE term lists (default: every file shipped in "
        "trials/reference/, e.g. ctcae-4.03.csv). The same content (sha256) loads once; changed "
        "content replaces the list. A bad file is refused with its row numbers, nothing written."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="*", help="terminology CSV files (<code>.csv)")
        parser.add_argument("--code", help="the terminology code, when the file name is not it")

    def handle(self, *args, files, code, **options):
        paths = files or [shipped_terminology_file(c) for c in shipped_terminology_codes()]
        if not paths:
            raise CommandError("No terminology files given and none shipped in trials/reference/.")
        for path in paths:
            try:
                result = load_terminology(path, code=code)
            except TerminologyError as exc:
                raise CommandError(str(exc)) from None
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}") from None
            self.stdout.write(str(result))
