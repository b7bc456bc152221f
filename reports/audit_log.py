"""The governance audit log of one trial, as its reader may see it (issue 20, item 5): the
filters of the audit log page and of the API, the rows of one page, and the CSV export.

Who sees what (docs/monitoring.md says it for people):
- Readers hold ``Perm.VIEW_AUDIT`` (the data manager, the statistician; superusers).
- Site scoping: each entry names the site it concerns (``AuditEvent.site``: the participant's,
  or the site of a site-level event) or none (trial-wide: protocol loads, list seals, exports,
  reports, all-sites memberships, and every entry written before entries named their site).
  A reader of the whole trial sees every entry; a reader of some sites sees those sites'
  entries only, never a trial-wide one: an entry without a site cannot be shown to be free of
  other sites' participants, so it is not shown.
- Blinding: an entry's ``message`` is written without arms (``core.audit.record``) and its
  ``detail`` is shown to unblinded readers only. A message may still quote what a person typed
  (a reason); for a blinded reader every arm's code, label and description is masked in it, so
  no free text can reveal an arm either.
- The participant filter finds participants of the reader's sites only: another site's study
  ID is "not found", as a made-up one, so the filter does not reveal that it exists.

Query counts do not depend on the number of entries: the page is its count and its rows (with
the actor and the site), the filters one look-up each, the arms one (blinded readers only).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Iterator, Mapping

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _

from core.models import AuditEvent
from patients.models import Participant
from trials import policy
from trials.models import Site, Trial
from trials.policy import Perm

from .exports import CHUNK_SIZE, csv_chunks

# The query-string names of the filters, on the page, in the CSV link and in the API.
FILTERS = ("site", "participant", "user", "kind", "start", "end")
CONCEALED = "[arm concealed]"


@dataclass(frozen=True)
class AuditFilters:
    site: Site | None = None
    study_id: str = ""
    actor: object | None = None
    kind: str = ""
    start: dt.date | None = None
    end: dt.date | None = None

    def described(self) -> dict[str, str]:
        """The filters in force, as text (for the export's own audit entry)."""
        values = {"site": self.site.code if self.site else "", "participant": self.study_id,
                  "user": self.actor.get_username() if self.actor else "", "kind": self.kind,
                  "start": self.start.isoformat() if self.start else "",
                  "end": self.end.isoformat() if self.end else ""}
        return {k: v for k, v in values.items() if v}


def readable_sites(user, trial: Trial) -> QuerySet[Site]:
    """The sites whose entries ``user`` may read."""
    return policy.sites_for(user, trial, Perm.VIEW_AUDIT).order_by("code")


def kinds(user, trial: Trial) -> list[str]:
    """The kinds (action codes) of the entries ``user`` may read, sorted: one query."""
    return list(_scoped(user, trial).order_by("action").values_list("action", flat=True)
                .distinct())


def parse_filters(user, trial: Trial, params: Mapping[str, str]) -> AuditFilters:
    """The filters asked for in ``params`` (a query string), checked: a bad value is a
    ``ValidationError`` naming the filter and saying what is wrong; nothing is silently
    ignored. At most one query per filter given."""
    get = {name: (params.get(name) or "").strip() for name in FILTERS}
    errors: dict[str, str] = {}
    found: dict[str, object] = {}
    if get["site"]:
        found["site"] = readable_sites(user, trial).filter(code=get["site"]).first()
        if found["site"] is None:
            errors["site"] = _("No site %(code)s among the sites whose audit log you may "
                               "read.") % {"code": get["site"]}
    if get["participant"]:
        known = Participant.objects.filter(
            policy.site_filter(user, trial, Perm.VIEW_AUDIT), trial=trial,
            study_id=get["participant"]).exists()
        if not known:
            errors["participant"] = _("No participant %(id)s at the sites whose audit log you "
                                      "may read.") % {"id": get["participant"]}
        found["study_id"] = get["participant"]
    if get["user"]:
        found["actor"] = get_user_model().objects.filter(username=get["user"]).first()
        if found["actor"] is None:
            errors["user"] = _("No user named %(name)s.") % {"name": get["user"]}
    if get["kind"]:
        if not _scoped(user, trial).filter(action=get["kind"]).exists():
            errors["kind"] = _("No entry of the kind %(kind)s in this audit log.") % {
                "kind": get["kind"]}
        found["kind"] = get["kind"]
    for name in ("start", "end"):
        if get[name]:
            try:
                found[name] = parse_date(get[name])
            except ValueError:
                found[name] = None
            if found[name] is None:
                errors[name] = _("%(value)s is not a date: write it as YYYY-MM-DD.") % {
                    "value": get[name]}
    if found.get("start") and found.get("end") and found["end"] < found["start"]:
        errors["end"] = _("The end date (%(end)s) is before the start date (%(start)s).") % {
            "end": found["end"].isoformat(), "start": found["start"].isoformat()}
    if errors:
        raise ValidationError(errors)
    return AuditFilters(**found)


def _scoped(user, trial: Trial) -> QuerySet[AuditEvent]:
    """The entries of ``trial`` that ``user`` may read (see the module's docstring)."""
    entries = AuditEvent.objects.filter(trial=trial)
    if policy.holds_for_every_site(user, trial, Perm.VIEW_AUDIT):
        return entries
    return entries.filter(policy.site_filter(user, trial, Perm.VIEW_AUDIT))


def audit_log_for(user, trial: Trial, filters: AuditFilters | None = None
                  ) -> QuerySet[AuditEvent]:
    """The entries ``user`` may read, filtered, newest first, with their actor and site."""
    f = filters or AuditFilters()
    entries = _scoped(user, trial).select_related("actor", "site")
    if f.site:
        entries = entries.filter(site=f.site)
    if f.study_id:
        entries = entries.filter(study_id=f.study_id)
    if f.actor:
        entries = entries.filter(actor=f.actor)
    if f.kind:
        entries = entries.filter(action=f.kind)
    if f.start:
        entries = entries.filter(at__gte=_midnight(f.start))
    if f.end:
        entries = entries.filter(at__lt=_midnight(f.end + dt.timedelta(days=1)))
    return entries.order_by("-at", "-id")


def _midnight(day: dt.date) -> dt.datetime:
    """The start of ``day`` in the project's time zone (the dates a reader types are local)."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


class Reader:
    """How one reader sees entries: the message with arms masked when they are blinded, the
    detail only when they are not (one query for the arms, blinded readers only)."""

    def __init__(self, user, trial: Trial):
        self.blinded = policy.is_blinded_for(user, trial)
        self._arms = None
        if self.blinded:
            words = []
            for code, label, description in trial.arms.values_list("code", "label",
                                                                   "description"):
                words += [w for w in (description, description[:40], label) if w]
                words.append(rf"\b{re.escape(code)}\b")
            self._arms = re.compile("|".join(
                w if w.startswith(r"\b") else re.escape(w)
                for w in sorted(words, key=len, reverse=True)), re.IGNORECASE) if words else None

    def message(self, entry: AuditEvent) -> str:
        if self._arms is None:
            return entry.message
        return self._arms.sub(CONCEALED, entry.message)

    def detail(self, entry: AuditEvent) -> dict | None:
        return None if self.blinded else entry.detail


@dataclass(frozen=True)
class Row:
    entry: AuditEvent
    message: str
    detail: dict | None


def rows(user, trial: Trial, entries) -> list[Row]:
    """The entries of one page as ``user`` may read them."""
    reader = Reader(user, trial)
    return [Row(e, reader.message(e), reader.detail(e)) for e in entries]


def csv_lines(user, trial: Trial, filters: AuditFilters) -> Iterator[list[str]]:
    """The CSV's rows: a header, then every entry read by a server-side cursor."""
    reader = Reader(user, trial)
    yield ["at_utc", "kind", "site", "study_id", "user", "object_type", "object_id", "message",
           *([] if reader.blinded else ["detail"])]
    for e in audit_log_for(user, trial, filters).iterator(chunk_size=CHUNK_SIZE):
        yield [e.at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"), e.action,
               e.site.code if e.site else "", e.study_id,
               e.actor.get_username() if e.actor else "", e.object_type, e.object_id,
               reader.message(e),
               *([] if reader.blinded else [json.dumps(e.detail, sort_keys=True,
                                                       ensure_ascii=False)])]


def export_csv(user, trial: Trial, filters: AuditFilters) -> Iterator[str]:
    """The filtered log as CSV text, in chunks (``exports.csv_chunks``: cells neutralised)."""
    return csv_chunks(csv_lines(user, trial, filters))
