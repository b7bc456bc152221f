"""What every app's forms share: a service's errors next to their fields, a free text with its
limit (``core.limits``), and the one date input."""
from __future__ import annotations

import datetime

from django import forms
from django.core.exceptions import ValidationError

from .limits import TextLimit

# What a date box may receive besides ISO: the French way, typed where the browser has no picker.
DATE_INPUT_FORMATS = ["%Y-%m-%d", "%d/%m/%Y"]


def attach_errors(form: forms.Form, exc: ValidationError) -> None:
    """A service's refusal, next to the form's field it names (else at the top of the form)."""
    errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
    for name, messages_ in errors.items():
        form.add_error(name if name in form.fields else None, messages_)


class LimitedText(forms.CharField):
    """A free text of at most ``limit.chars`` characters, refused with ``limit``'s message; the
    box itself stops typing at the limit (``maxlength``)."""

    def __init__(self, *, limit: TextLimit, rows: int | None = None, **kwargs):
        self.limit = limit
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": rows or 3}))
        kwargs["validators"] = [*kwargs.get("validators", ()), limit]
        super().__init__(**kwargs)

    def widget_attrs(self, widget):
        return {**super().widget_attrs(widget), "maxlength": str(self.limit.chars)}

    def to_python(self, value):
        # A browser counts a line break as one character against maxlength but sends it as
        # two (CRLF): counted as sent, a text the box accepted would be refused.
        value = super().to_python(value)
        return value.replace("\r\n", "\n") if isinstance(value, str) else value


class DateInput(forms.DateInput):
    """``<input type="date">``, its value always ``YYYY-MM-DD``: the only form a browser's date
    box accepts, whatever the page's language (a French ``04/12/2026`` leaves the box empty).
    A date typed in another accepted form and sent back with an error is shown as ISO too."""

    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")

    def format_value(self, value):
        if isinstance(value, str):
            for fmt in DATE_INPUT_FORMATS:
                try:
                    return datetime.datetime.strptime(value.strip(), fmt).date().isoformat()
                except ValueError:
                    pass
            return value
        return super().format_value(value)
