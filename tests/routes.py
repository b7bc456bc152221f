"""Every URL pattern of the project, for the tests that walk them all (login required, the
permission matrix, the blinding walk, the API schema's coverage)."""
from __future__ import annotations

from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver


def url_patterns(resolver: URLResolver | None = None, prefix: str = ""
                 ) -> Iterator[tuple[str, URLPattern]]:
    """(route, pattern) of every URL pattern but the admin's (it has its own login and is
    tested on its own)."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                continue
            yield from url_patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry
