from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ScreeningForm(forms.Form):
    site = forms.ModelChoiceField(queryset=None, label=_("Site"), empty_label=None)
    screened_on = forms.DateField(label=_("Screening date"),
                                  widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["screened_on"].initial = timezone.localdate()

    def clean_screened_on(self):
        value = self.cleaned_data["screened_on"]
        if value > timezone.localdate():
            raise forms.ValidationError(_("The screening date cannot be in the future."))
        return value


class ConsentForm(forms.Form):
    consent_date = forms.DateField(label=_("Date informed consent was signed"),
                                   widget=forms.DateInput(attrs={"type": "date"}))
    consent_version = forms.CharField(max_length=32, label=_("Consent form version"))
