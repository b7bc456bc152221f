"""How long each kind of free text a user types may be: the one place for these limits.

Forms, API serializers and services all use the limits below, so the page, the API and the
service (the truth) refuse the same text with the same message, before anything is written.
``docs/operations.md`` ("Free-text limits") lists them with why each is what it is; change
both together.

A limit counts characters, not bytes: forms and serializers count the text as they clean it
(spaces at its ends stripped, a line break counted once, as the box counts it), services as
they receive it.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class TextLimit:
    """At most ``chars`` characters for ``what`` ("The query text"), said in the message."""

    what: str | Promise
    chars: int

    def message(self, length: int) -> str:
        return _("%(what)s is %(length)s characters; at most %(limit)s are allowed.") % {
            "what": self.what, "length": number_format(length, force_grouping=True),
            "limit": number_format(self.chars, force_grouping=True)}

    def __call__(self, value) -> None:
        """A validator for a form's or a serializer's field."""
        if isinstance(value, str) and len(value) > self.chars:
            raise ValidationError(self.message(len(value)), code="max_length")

    def check(self, value, *, field: str) -> None:
        """For a service: refuse a text too long, the error keyed by ``field``."""
        if isinstance(value, str) and len(value) > self.chars:
            raise ValidationError({field: [self.message(len(value))]}, code="max_length")


# Data queries: the question, each answer, the note closing or reopening it. A question about
# one answer, not a letter; the whole thread is printed in the casebook.
QUERY_TEXT = TextLimit(_("The query text"), 2_000)
# Every reason a user gives: for a change of a completed CRF, an unlock, a withdrawal, an
# unblinding, a visit not done, a stratum correction, a kit replaced or released, an
# excursion's decision, a new screening. Read in the audit trail and the ODM export's
# audit records; the history row itself keeps the first 100 characters.
REASON = TextLimit(_("The reason"), 1_000)
# A screening-log note: short by design (no name, no date, no number may go there).
SCREENING_NOTE = TextLimit(_("The note"), 500)
# Other short notes: an allocation or kit list's note, a shipment's note.
NOTE = TextLimit(_("The note"), 1_000)
# An SAE narrative: the case described for the sponsor and the authorities (CIOMS box 7+13).
NARRATIVE = TextLimit(_("The narrative"), 20_000)
# The sponsor's assessment comment on an SAE.
COMMENT = TextLimit(_("The comment"), 5_000)
# A monitoring visit's findings: the report's summary, pasted from the monitor's notes.
FINDINGS = TextLimit(_("The findings text"), 10_000)
# What happened in a temperature excursion; a deviation's description.
DESCRIPTION = TextLimit(_("The description"), 2_000)
# A CRF text field the protocol gives no ``max_length``.
CRF_TEXT_CHARS = 2_000
