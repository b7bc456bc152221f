from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core import limits
from core.forms import DATE_INPUT_FORMATS, DateInput, LimitedText

from .models import WithdrawalLevel


class ScreeningForm(forms.Form):
    site = forms.ModelChoiceField(queryset=None, label=_("Site"), empty_label=None)
    screened_on = forms.DateField(label=_("Screening date"),
                                  widget=DateInput())

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["screened_on"].initial = timezone.localdate()

    def clean_screened_on(self):
        value = self.cleaned_data["screened_on"]
        if value > timezone.localdate():
            raise forms.ValidationError(_("The screening date cannot be in the future."))
        return value


class ScreeningLogForm(forms.Form):
    """One person assessed and not included: no identifier. The service judges the date, the
    site, the reason and the note (``patients.screening``)."""

    site = forms.ModelChoiceField(queryset=None, label=_("Site"), empty_label=None)
    screened_on = forms.DateField(label=_("Screening date"),
                                  widget=DateInput())
    reason = forms.ChoiceField(label=_("Reason for non-inclusion"))
    note = LimitedText(limit=limits.SCREENING_NOTE, rows=2, required=False,
                       label=_("Note (no name, no date, no number)"))

    def __init__(self, *args, sites, reasons, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["screened_on"].initial = timezone.localdate()
        self.fields["reason"].choices = [(r["code"], r["label"]) for r in reasons]


class RescreenForm(forms.Form):
    reason = LimitedText(limit=limits.REASON, rows=2, label=_("Why screen again"))


class ConsentForm(forms.Form):
    """A signed consent form: first, re-consent, or correction. The version is a choice among
    the protocol's declared versions (free text when it declares none); each optional item of
    any declared version is a yes / no / not asked select, and the service refuses an answer to
    an item the chosen version does not have."""

    consent_date = forms.DateField(label=_("Date informed consent was signed"),
                                   widget=DateInput())
    consent_version = forms.CharField(max_length=32, label=_("Consent form version"))
    taken_by = forms.CharField(max_length=120, required=False, label=_("Consent taken by"),
                               help_text=_("As written on the form; empty: yourself."))
    corrects = forms.TypedChoiceField(required=False, coerce=int, empty_value=None,
                                      label=_("Corrects the record"))
    reason = LimitedText(limit=limits.REASON, rows=2, required=False,
                         label=_("Reason for the correction"))

    ANSWERS = [("", _("not asked")), ("yes", _("yes")), ("no", _("no"))]

    def __init__(self, *args, versions: list[dict], corrects: list[tuple[int, str]] = (),
                 **kwargs):
        super().__init__(*args, **kwargs)
        if versions:
            self.fields["consent_version"] = forms.ChoiceField(
                label=_("Consent form version"),
                choices=[(v["code"], f"{v['code']} — {v['label']} ({v['date']})")
                         for v in versions])
        self.fields["corrects"].choices = [("", _("none: a new consent"))] + list(corrects)
        if not corrects:
            del self.fields["corrects"], self.fields["reason"]
        self.items = {}
        for version in versions:
            for item in version.get("optional_items", []):
                name = f"item_{item['code']}"
                if name not in self.fields:
                    self.fields[name] = forms.ChoiceField(
                        choices=self.ANSWERS, required=False, label=item["label"])
                    self.items[name] = item["code"]

    def answers(self) -> dict[str, bool]:
        return {code: self.cleaned_data[name] == "yes" for name, code in self.items.items()
                if self.cleaned_data.get(name)}


class WithdrawalForm(forms.Form):
    level = forms.ChoiceField(label=_("Level"), choices=WithdrawalLevel.choices,
                              widget=forms.RadioSelect)
    withdrawn_on = forms.DateField(label=_("Date of withdrawal"),
                                   widget=DateInput())
    reason = LimitedText(limit=limits.REASON, label=_("Reason"))


class VisitActionForm(forms.Form):
    """One coordinator action on one visit. The service judges the dates (future, before
    randomisation) and the transitions; this form only reads the input."""

    ACTIONS = [
        ("done", _("Done on")),
        ("missed", _("Not done")),
        ("not_applicable", _("Not applicable")),
        ("reopen", _("Plan again")),
    ]
    action = forms.ChoiceField(choices=ACTIONS, label=_("Action"))
    done_on = forms.DateField(required=False, label=_("Visit date"),
                              input_formats=DATE_INPUT_FORMATS,
                              widget=DateInput(),
                              error_messages={"invalid": _("Enter a valid date, as YYYY-MM-DD "
                                                           "or DD/MM/YYYY.")})
    reason = LimitedText(limit=limits.REASON, required=False, label=_("Reason"),
                         widget=forms.TextInput)

    def clean(self):
        data = super().clean()
        missing_date = not data.get("done_on") and "done_on" not in self.errors
        if data.get("action") == "done" and missing_date:
            self.add_error("done_on", _("Give the date the visit took place."))
        return data


class UnscheduledVisitForm(forms.Form):
    on = forms.DateField(label=_("Date"), input_formats=DATE_INPUT_FORMATS,
                         widget=DateInput(),
                         error_messages={"invalid": _("Enter a valid date, as YYYY-MM-DD or "
                                                      "DD/MM/YYYY.")})
    reason = LimitedText(limit=limits.REASON, label=_("Reason"), widget=forms.TextInput)
    crfs = forms.MultipleChoiceField(required=False, label=_("Forms expected"),
                                     widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, crf_choices: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["crfs"].choices = crf_choices
