"""Dates are written one way per language on every page (``config/formats``): ISO 8601 in
English, day first in French; the value of a date box is ISO in both (the only form an
``<input type="date">`` accepts)."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Profile
from tests.crf_world import crf_url

ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
DAY_FIRST = re.compile(r"\b\d{2}/\d{2}/\d{4}\b")


class _Text(HTMLParser):
    """What a reader sees: the text between tags, not attributes, scripts or styles."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def seen(response) -> str:
    parser = _Text()
    parser.feed(response.content.decode())
    return " ".join(parser.parts)


def pages(record) -> list[str]:
    p = record.participant
    return [reverse("participant_detail", args=[p.trial.slug, p.study_id]),
            reverse("visit_timeline", args=[p.trial.slug, p.study_id]),
            crf_url(record)]


@pytest.mark.parametrize("language, expected, never", [
    ("en", ISO, DAY_FIRST), ("fr", DAY_FIRST, ISO)])
def test_pages_write_dates_in_the_readers_language_only(complete, investigator, client_for,
                                                        language, expected, never):
    Profile.objects.update_or_create(user=investigator, defaults={"language": language})
    client = client_for(investigator)
    today = timezone.localdate()
    shown = {"en": today.isoformat(), "fr": today.strftime("%d/%m/%Y")}[language]
    for url in pages(complete):
        text = seen(client.get(url))
        assert expected.search(text), url
        assert not never.search(text), (url, never.findall(text)[:5])
    assert shown in seen(client.get(pages(complete)[0]))


def test_a_date_box_receives_iso_in_french(participant, coordinator, client_for):
    Profile.objects.update_or_create(user=coordinator, defaults={"language": "fr"})
    page = client_for(coordinator).get(reverse("screen_participant",
                                               args=[participant.trial.slug]))
    today = timezone.localdate()
    assert f'type="date" name="screened_on" value="{today.isoformat()}"' in page.content.decode()
    assert today.strftime("%d/%m/%Y") not in page.content.decode()


def test_a_refusal_names_its_dates_in_the_readers_format(participant, coordinator):
    import datetime as dt

    from django.core.exceptions import ValidationError
    from django.utils import translation

    from patients import services

    early = participant.screened_on - dt.timedelta(days=30)
    for language, expected, never in (("en", ISO, DAY_FIRST), ("fr", DAY_FIRST, ISO)):
        with translation.override(language), pytest.raises(ValidationError) as info:
            services.record_withdrawal(participant, level="treatment", withdrawn_on=early,
                                       reason="Moved abroad.", by=coordinator)
        message = " ".join(info.value.messages)
        assert expected.search(message) and not never.search(message), message
