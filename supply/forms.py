"""The forms of the supply pages: a shipment to dispatch, a receipt kit by kit, an excursion,
returns and destruction, an excursion's decision, the accountability log's dates.

Kit numbers are typed (or scanned) from labels; the services say which ones are wrong. No form
shows an arm, except the dispatch form's quantities, which only the supply manager (unblinded
to kits, ``Perm.MANAGE_SUPPLY``) ever sees.
"""
from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from core import limits
from core.forms import DateInput, LimitedText

from .models import ReceiptOutcome

NUMBERS_HELP = _("One kit number per line (or separated by spaces or commas).")


def numbers_of(text: str) -> list[str]:
    """Kit numbers typed or scanned, one per line or separated by spaces or commas."""
    return [n for n in re.split(r"[\s,;]+", text or "") if n]


class DispatchForm(forms.Form):
    site = forms.ChoiceField(label=_("Site"))
    depot = forms.ChoiceField(label=_("Depot"))
    note = LimitedText(limit=limits.NOTE, rows=2, label=_("Note"), required=False)

    def __init__(self, *args, sites, arms, depots, **kwargs):
        super().__init__(*args, **kwargs)
        self.arms = list(arms)
        self.fields["site"].choices = [("", "—")] + [(s.code, f"{s.code} · {s.name}")
                                                      for s in sites]
        self.fields["depot"].choices = [(d["code"], f"{d['code']} · {d.get('name', '')}")
                                        for d in depots]
        for arm in self.arms:
            self.fields[f"qty_{arm.code}"] = forms.IntegerField(
                label=_("Kits of %(arm)s") % {"arm": f"{arm.code} · {arm.label}"},
                min_value=0, max_value=10_000, initial=0)

    def clean(self):
        data = super().clean()
        names = [f"qty_{a.code}" for a in self.arms]
        if all(n in data for n in names) and not any(data[n] for n in names):
            raise ValidationError(_("A shipment needs at least one kit."))
        return data

    def quantities(self) -> dict[str, int]:
        return {a.code: self.cleaned_data[f"qty_{a.code}"] for a in self.arms}


class ReceiptForm(forms.Form):
    """One outcome per kit of the shipment (received by default), and the numbers scanned at
    the site with an outcome word after each, which count over the choices above."""

    scanned = forms.CharField(
        label=_("Scanned numbers"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Optional: one kit number per line, followed by damaged or missing when "
                    "the kit is (received otherwise)."))

    def __init__(self, *args, numbers: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.numbers = numbers
        for number in numbers:
            self.fields[f"kit_{number}"] = forms.ChoiceField(
                label=number, choices=ReceiptOutcome.choices, initial=ReceiptOutcome.RECEIVED)

    def kit_fields(self):
        return [self[f"kit_{n}"] for n in self.numbers]

    def outcomes(self) -> dict[str, str]:
        """Kit number -> outcome; a scanned line's outcome word is passed on as typed, so that
        the service names it when it is not one of received, damaged or missing."""
        out = {n: self.cleaned_data[f"kit_{n}"] for n in self.numbers}
        words = {str(label).lower(): value for value, label in ReceiptOutcome.choices}
        words.update({value: value for value in ReceiptOutcome.values})
        for line in (self.cleaned_data.get("scanned") or "").splitlines():
            parts = line.split(None, 1)
            if not parts:
                continue
            word = parts[1].strip().lower() if len(parts) > 1 else ReceiptOutcome.RECEIVED
            out[parts[0]] = words.get(word, word)
        return out


class ExcursionForm(forms.Form):
    kits = forms.MultipleChoiceField(label=_("Kits exposed"),
                                     widget=forms.CheckboxSelectMultiple)
    description = LimitedText(
        limit=limits.DESCRIPTION, label=_("What happened"),
        help_text=_("Temperatures, how long, where the kits were."))

    def __init__(self, *args, numbers: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kits"].choices = [(n, n) for n in numbers]


class KitsForm(forms.Form):
    """Returns (the site's) or destruction (the supply manager's) of kits typed by number."""

    numbers = forms.CharField(label=_("Kit numbers"), help_text=NUMBERS_HELP,
                              widget=forms.Textarea(attrs={"rows": 3}))
    reason = LimitedText(limit=limits.REASON, rows=2, label=_("Reason"), required=False)

    def numbers_list(self) -> list[str]:
        return numbers_of(self.cleaned_data["numbers"])


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(label=_("Decision"), widget=forms.RadioSelect,
                                 choices=[("release", _("Released: usable")),
                                          ("destroy", _("Not usable: to destroy"))])
    reason = LimitedText(limit=limits.REASON, rows=2, label=_("Reason"),
                         help_text=_("Stability data, the depot's advice…"))


class PeriodForm(forms.Form):
    """The accountability log's optional date range."""

    start = forms.DateField(label=_("From"), required=False,
                            widget=DateInput(),
                            error_messages={"invalid": _("Enter a date as YYYY-MM-DD.")})
    end = forms.DateField(label=_("To"), required=False,
                          widget=DateInput(),
                          error_messages={"invalid": _("Enter a date as YYYY-MM-DD.")})

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", _("The end of the period is before its start."))
        return data
