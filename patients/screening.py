"""The screening log: people assessed at a site and not registered (CONSORT 2010's "assessed
for eligibility" box, with the registered participants).

Before consent a person may not be identified in the trial's records: an entry is the day, the
site and the protocol's reason for non-inclusion (``screening.non_inclusion_reasons``), and an
optional note that is refused when it looks like it identifies someone (``identifier_in``).
"""
from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _, gettext_noop

from core import audit, limits
from core.dates import shown_date
from trials import policy
from trials.models import Site, Trial
from trials.policy import Perm

from .models import ScreeningLogEntry

# What an identifier looks like in free text. Deliberately wide: a note that merely resembles
# one is refused, and the person writing it says the same without it.
_MONTHS = (r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|janv|f[ée]v|mars|avr|mai|juin|"
           r"juil|ao[uû]t|sept|d[ée]c")
IDENTIFIER_PATTERNS: list[tuple[re.Pattern, str]] = [
    # 12/03/1954, 12-3-54, 1954-03-12, 12.03.1954
    (re.compile(r"\b\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}\b"), gettext_noop("a date")),
    # 12 March 1954, 3 mars 54, March 1954
    (re.compile(rf"\b(\d{{1,2}}\s+)?({_MONTHS})[a-zéû]*\.?\s+\d{{2,4}}\b", re.IGNORECASE),
     gettext_noop("a date")),
    # born 1954, né en 1954, DOB
    (re.compile(r"\b(born|n[ée]e?|dob|ddn)\b", re.IGNORECASE), gettext_noop("a date of birth")),
    # a phone, social security, hospital or record number: 6 digits or more, spaces allowed
    (re.compile(r"(?<![\w.])\+?\d(?:[\s.\-]?\d){5,}(?![\w.])"), gettext_noop("a phone or identification number")),
    # John Smith, Marie-Claire Dupont: two capitalised words in a row
    (re.compile(r"\b[A-ZÀ-Ý][a-zà-ÿ]+(?:-[A-ZÀ-Ý][a-zà-ÿ]+)?\s+[A-ZÀ-Ý][a-zà-ÿ]+(?:-[A-ZÀ-Ý][a-zà-ÿ]+)?\b"),
     gettext_noop("a name")),
    # initials such as "J.S." or "J. S."
    (re.compile(r"\b[A-Z]\.\s?[A-Z]\.(?!\w)"), gettext_noop("initials")),
]


def identifier_in(text: str) -> tuple[str, str] | None:
    """(what it looks like, the text found) for the first identifier-looking part of ``text``,
    or None."""
    for pattern, kind in IDENTIFIER_PATTERNS:
        found = pattern.search(text)
        if found:
            return kind, found.group(0)
    return None


def non_inclusion_reasons(trial: Trial) -> list[dict]:
    """The protocol's reasons for non-inclusion ({code, label, source}), in its order."""
    return trial.definition.get("screening", {}).get("non_inclusion_reasons", [])


def opened_on(trial: Trial) -> dt.date | None:
    """The day screening opened, as the protocol states it (None: not stated)."""
    day = trial.definition.get("screening", {}).get("opened_on")
    return dt.date.fromisoformat(day) if day else None


@transaction.atomic
def record_screening_log_entry(trial: Trial, *, site: Site, screened_on: dt.date, reason: str,
                               note: str = "", by) -> ScreeningLogEntry:
    """Write one screening log entry. Every problem is named, by field; nothing is written
    when there is one."""
    limits.SCREENING_NOTE.check(note, field="note")
    errors: dict[str, str] = {}
    if site.trial_id != trial.pk:
        errors["site"] = _("Site %(code)s is not a site of this trial.") % {"code": site.code}
    elif not policy.has_perm(by, Perm.SCREEN, trial, site):
        errors["site"] = _("You do not keep the screening log of site %(code)s.") % {
            "code": site.code}
    today = timezone.localdate()
    first = opened_on(trial)
    if screened_on > today:
        errors["screened_on"] = _("The screening date cannot be in the future.")
    elif first is not None and screened_on < first:
        errors["screened_on"] = _("%(day)s is before the trial opened to screening "
                                  "(%(opened)s).") % {"day": shown_date(screened_on),
                                                      "opened": shown_date(first)}
    codes = [r["code"] for r in non_inclusion_reasons(trial)]
    if reason not in codes:
        errors["reason"] = _("%(reason)s is not a reason the protocol declares (%(codes)s).") % {
            "reason": repr(reason), "codes": ", ".join(codes)}
    note = note.strip()
    found = identifier_in(note)
    if found:
        errors["note"] = _("The note seems to contain %(kind)s (“%(text)s”): the screening log "
                           "must not identify anyone. Remove it.") % {
            "kind": _(found[0]), "text": found[1]}
    if errors:
        raise ValidationError(errors)
    entry = ScreeningLogEntry(trial=trial, site=site, screened_on=screened_on, reason=reason,
                              note=note, created_by=by)
    entry._change_reason = "screening log entry"  # stored in the history: English
    entry.save()
    audit.record("screening_log.entry",
                 f"Screening log, site {site.code}: one person screened on "
                 f"{screened_on:%Y-%m-%d} not included ({reason}).",
                 actor=by, trial=trial, obj=entry, site=site)
    return entry


def screening_log_for(user, trial: Trial) -> QuerySet[ScreeningLogEntry]:
    """The log entries of the sites where ``user`` may read the screening log."""
    return (ScreeningLogEntry.objects.filter(trial=trial)
            .filter(policy.site_filter(user, trial, Perm.VIEW_SCREENING_LOG))
            .select_related("site").order_by("-screened_on", "-pk"))
