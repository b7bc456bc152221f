"""The forms of SAE reporting: a version (the investigator's), the sponsor's assessment, the
password typed again (signature, unblinding)."""
from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core import limits
from core.forms import DateInput, LimitedText

from .models import Causality, Criterion, Expectedness, Outcome
from .services import VERSION_FIELDS


class VersionForm(forms.Form):
    criteria = forms.MultipleChoiceField(label=_("Seriousness criteria (ICH E2A)"),
                                         choices=Criterion.choices, required=False,
                                         widget=forms.CheckboxSelectMultiple)
    onset_date = forms.DateField(label=_("Onset date"), required=False,
                                 widget=DateInput())
    aware_at = forms.DateTimeField(label=_("Site aware of the event on"), required=False,
                                   widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                              format="%Y-%m-%dT%H:%M"))
    outcome = forms.ChoiceField(label=_("Outcome"), required=False,
                                choices=[("", "—"), *Outcome.choices])
    death_date = forms.DateField(label=_("Date of death"), required=False,
                                 widget=DateInput())
    narrative = LimitedText(limit=limits.NARRATIVE, rows=6, label=_("Narrative"), required=False)

    def __init__(self, *args, products, version=None, **kwargs):
        if version is not None and not kwargs.get("data") and not args:
            initial = {f: getattr(version, f) for f in VERSION_FIELDS}
            if initial["aware_at"]:
                initial["aware_at"] = timezone.localtime(initial["aware_at"])
            for code, value in (version.causality or {}).items():
                initial[f"causality_{code}"] = value
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        self.products = products
        for product in products:
            self.fields[f"causality_{product['code']}"] = forms.ChoiceField(
                label=_("Causality: %(product)s") % {"product": product["label"]},
                required=False, choices=[("", "—"), *Causality.choices])

    def values(self) -> dict:
        data = {f: self.cleaned_data.get(f) for f in VERSION_FIELDS if f != "causality"}
        data["outcome"] = data["outcome"] or ""
        data["narrative"] = (data["narrative"] or "").strip()
        data["causality"] = {p["code"]: self.cleaned_data.get(f"causality_{p['code']}") or ""
                             for p in self.products}
        return data


class PasswordForm(forms.Form):
    password = forms.CharField(label=_("Your password, again"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete":
                                                                 "current-password"}))


class AssessmentForm(forms.Form):
    comment = LimitedText(limit=limits.COMMENT, label=_("Comment"), required=False)

    def __init__(self, *args, products, **kwargs):
        super().__init__(*args, **kwargs)
        self.products = products
        for product in products:
            rsi = product["reference_safety_information"]
            self.fields[f"causality_{product['code']}"] = forms.ChoiceField(
                label=_("Causality: %(product)s") % {"product": product["label"]},
                choices=[("", "—"), *Causality.choices], required=False)
            self.fields[f"expectedness_{product['code']}"] = forms.ChoiceField(
                label=_("Expectedness against %(document)s (version %(version)s)") % rsi,
                choices=[("", "—"), *Expectedness.choices], required=False)

    def values(self) -> dict:
        return {
            "causality": {p["code"]: self.cleaned_data.get(f"causality_{p['code']}") or ""
                          for p in self.products},
            "expectedness": {p["code"]: self.cleaned_data.get(f"expectedness_{p['code']}") or ""
                             for p in self.products},
            "comment": self.cleaned_data.get("comment") or ""}


class UnblindForm(PasswordForm):
    reason = LimitedText(limit=limits.REASON, label=_("Reason"))
    field_order = ["reason", "password"]


class SusarSubmissionForm(forms.Form):
    """The expedited report of a SUSAR sent to the authorities: when, and its reference."""

    submitted_on = forms.DateField(label=_("Submitted to the authorities on"),
                                   widget=DateInput())
    reference = forms.CharField(label=_("Reference (e.g. EudraVigilance)"), max_length=120)
