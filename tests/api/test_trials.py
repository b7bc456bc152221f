"""The trial as the API shows it: what its protocol states, and null for what it does not."""
from __future__ import annotations

from django.urls import reverse


def test_the_target_enrolment_is_null_when_the_protocol_does_not_state_it(rectal, reminet,
                                                                         make_user, api):
    for trial, target in ((rectal, None), (reminet, 118)):
        body = api(make_user("sponsor", trial)).get(reverse("api_trial", args=[trial.slug])).json()
        assert body["target_enrolment"] == target, trial.slug
