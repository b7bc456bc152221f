"""A CRF text field the protocol gives no ``max_length`` has the default limit
(``core.limits.CRF_TEXT_CHARS``): refused past it, on the page and in the API alike (the API
runs the page's form)."""
from __future__ import annotations

import datetime

from django.http import QueryDict

from core import limits
from crfs.forms import build_crf_form

NOTES = {"code": "notes", "label": "Notes", "fields": [
    {"code": "comment", "label": "Comment", "type": "text"}]}


def _form(text: str):
    data = QueryDict(mutable=True)
    data["comment"] = text
    return build_crf_form(NOTES, mode="draft", data=data, today=datetime.date(2026, 12, 5))


def test_a_text_field_without_max_length_takes_the_default_limit():
    n = limits.CRF_TEXT_CHARS
    assert _form("c" * n).is_valid()
    form = _form("c" * (n + 1))
    assert not form.is_valid()
    assert form.errors["comment"] == [f"At most {n} characters (you entered {n + 1})."]
    assert f'maxlength="{n}"' in str(form["comment"])
