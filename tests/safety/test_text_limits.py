"""The SAE narrative and the sponsor's comment have their limits (``core.limits``): refused
with the message, nothing written."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from core import limits
from safety import services
from safety.forms import VersionForm
from tests.safety.conftest import complete_values


def test_a_narrative_over_the_limit_is_refused_and_the_draft_unchanged(world, sae):
    draft = services.draft_of(sae)
    too_long = "n" * (limits.NARRATIVE.chars + 1)
    with pytest.raises(ValidationError) as info:
        services.save_draft(sae, complete_values(sae, narrative=too_long),
                            by=world["investigator"])
    assert info.value.message_dict["narrative"] == [
        "The narrative is 20,001 characters; at most 20,000 are allowed."]
    draft.refresh_from_db()
    assert draft.narrative == ""


def test_the_report_form_refuses_a_narrative_over_the_limit(world):
    form = VersionForm({"narrative": "n" * 20_001}, products=[])
    assert not form.is_valid()
    assert "at most 20,000 are allowed" in form.errors["narrative"][0]
