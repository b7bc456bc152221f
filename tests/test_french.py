"""A French-speaking user (``Profile.language = "fr"``) reads French: errors raised by the
services, the randomisation certificate, the trial page and the e-mails written for them."""
from __future__ import annotations

import html

import pytest
from django.core import mail
from django.urls import reverse

from randomization import services
from tests import factories
from tests.conftest import PASSWORD
from trials.models import Profile

NBSP = "\u00a0"


def french(user):
    Profile.objects.update_or_create(user=user, defaults={"language": "fr"})
    return user


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def test_randomise_page_says_in_french_why_a_participant_cannot_be_randomised(
        reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    participant = factories.participant(trial, by=coordinator)  # no consent recorded
    client_for(french(coordinator))

    text = page_text(client.get(reverse("randomize", args=[trial.slug, participant.study_id])))

    assert f"Aucun consentement éclairé n'est enregistré pour {participant.study_id}." in text
    assert f"Ce participant ne peut pas être randomisé{NBSP}:" in text
    assert f"Randomiser {participant.study_id}" in text
    assert "no recorded informed consent" not in text


def test_the_certificate_is_printed_in_french(reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    participant = factories.randomised(trial, by=coordinator)
    client_for(french(coordinator))

    response = client.get(reverse("allocation_certificate",
                                  args=[trial.slug, participant.study_id]))

    assert response["Content-Type"] == "application/pdf"
    content = response.content  # uncompressed: the text is in the bytes
    for label in (b"Certificat de randomisation", b"(Centre)", b"(Strate)", b"Code du kit",
                  b"Liste de randomisation", b"Imprim"):
        assert label in content, label
    for label in (b"Randomisation certificate", b"(Site)", b"(Stratum)", b"Printed"):
        assert label not in content, label


def test_the_trial_page_headings_are_french(reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    factories.randomised(trial, by=coordinator)
    client_for(french(coordinator))

    text = page_text(client.get(reverse("trial_detail", args=[trial.slug])))

    # The count columns (context "count column"), not the participant statuses.
    assert "<th>Pré-inclus</th><th>Randomisés</th>" in text
    assert "<h2>Centres</h2>" in text and "<h2>Bras</h2>" in text
    assert f"1 randomisé sur {trial.target_enrolment} prévus" in text
    assert ">Français</option>" in text and ">English</option>" in text  # each in its own name


def test_unblinding_mail_is_written_in_each_recipients_language(
        reminet_ready, make_user, statistician, django_capture_on_commit_callbacks):
    trial, coordinator = reminet_ready
    investigator = make_user("investigator", trial, trial.sites.order_by("code").first())
    sponsor = make_user("sponsor", trial)  # no profile: the site's default language, English
    french(statistician)
    allocation = services.randomize(factories.eligible_participant(trial, by=coordinator),
                                    by=coordinator)
    study_id = allocation.participant.study_id

    with django_capture_on_commit_callbacks(execute=True):
        services.emergency_unblind(allocation, by=investigator, reason="Hypoglycémie sévère",
                                   password=PASSWORD)

    by_recipient = {tuple(m.to): m for m in mail.outbox}
    assert set(by_recipient) == {(sponsor.email,), (statistician.email,)}
    fr, en = by_recipient[(statistician.email,)], by_recipient[(sponsor.email,)]
    assert fr.subject == f"[{trial.short_title}] Levée d'aveugle en urgence de {study_id}"
    assert f"Motif indiqué{NBSP}: Hypoglycémie sévère" in fr.body
    assert en.subject == f"[{trial.short_title}] Emergency unblinding of {study_id}"
    assert "Reason given: Hypoglycémie sévère" in en.body


@pytest.mark.parametrize("language, expected", [
    ("fr", "Liste de randomisation #1{nbsp}: strate épuisée"),
    ("en", "Allocation list #1: stratum exhausted"),
])
def test_list_exhaustion_alert_in_the_statisticians_language(
        reminet, statistician, coordinator_factory, django_capture_on_commit_callbacks,
        language, expected):
    from randomization.models import Stratum

    coordinator = coordinator_factory(reminet)
    Profile.objects.update_or_create(user=statistician, defaults={"language": language})
    alist = factories.sealed_list(reminet, by=statistician, slots_per_stratum=2)
    key = "grade=G1;l1_response=objective_response"  # the default eligibility answers' stratum
    for _ in range(Stratum.objects.get(allocation_list=alist, key=key).size):
        services.randomize(factories.eligible_participant(reminet, by=coordinator), by=coordinator)
    extra = factories.eligible_participant(reminet, by=coordinator)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True), \
            pytest.raises(services.RandomisationError, match="no slot left"):
        services.randomize(extra, by=coordinator)  # the coordinator's language: English
    [message] = mail.outbox
    assert message.to == [statistician.email]
    assert message.subject == f"[{reminet.short_title}] " + expected.format(nbsp=NBSP)
