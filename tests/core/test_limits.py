"""The free-text limits (``core.limits``): one message, saying what, how long and the limit,
in the reader's language; the form field refuses past the limit and its box says the limit."""
from __future__ import annotations

import pytest
from django import forms
from django.core.exceptions import ValidationError
from django.utils import translation

from core import limits
from core.forms import LimitedText


def test_the_message_says_what_how_long_and_the_limit():
    assert limits.QUERY_TEXT.message(20_000) == (
        "The query text is 20,000 characters; at most 2,000 are allowed.")


def test_the_message_in_french_groups_digits_the_french_way():
    with translation.override("fr"):
        message = limits.QUERY_TEXT.message(20_000)
    assert message.replace("\xa0", " ").replace("\u202f", " ") == (
        "Le texte de la requête fait 20 000 caractères ; 2 000 au plus sont admis.")


def test_a_service_check_names_the_field_and_passes_a_text_at_the_limit():
    limits.REASON.check("r" * limits.REASON.chars, field="reason")
    limits.REASON.check(None, field="reason")  # absent: the service says what is missing
    with pytest.raises(ValidationError) as info:
        limits.REASON.check("r" * (limits.REASON.chars + 1), field="reason")
    assert info.value.message_dict == {
        "reason": ["The reason is 1,001 characters; at most 1,000 are allowed."]}


class Note(forms.Form):
    note = LimitedText(limit=limits.SCREENING_NOTE, required=False)


def test_the_form_field_refuses_past_the_limit_and_its_box_says_the_limit():
    assert 'maxlength="500"' in str(Note()["note"])
    assert Note({"note": "n" * 500}).is_valid()
    form = Note({"note": "n" * 501})
    assert not form.is_valid()
    assert form.errors["note"] == ["The note is 501 characters; at most 500 are allowed."]


def test_every_limit_is_documented():
    """docs/operations.md's table lists each limit with its number."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for name in dir(limits):
        value = getattr(limits, name)
        if isinstance(value, limits.TextLimit):
            assert f"`{name}`" in doc and f"{value.chars:,}" in doc, name
    assert f"{limits.CRF_TEXT_CHARS:,}" in doc and "`CRF_TEXT_CHARS`" in doc


def test_a_line_break_counts_once_as_in_the_box():
    """The box counts a line break as one character; the browser sends it as CRLF."""
    form = Note({"note": "n\r\n" * 250})  # 500 characters in the box, 750 as sent
    assert form.is_valid() and form.cleaned_data["note"] == ("n\n" * 250).strip()
