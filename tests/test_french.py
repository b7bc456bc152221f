"""A French-speaking user (``Profile.language = "fr"``) reads French: errors raised by the
services, the randomisation certificate, the trial page and the e-mails written for them, the
Outcomes, Reports and Exports pages, the reports themselves, two-factor set-up and API token,
the kit list and supply refusals, the kit statuses and the monitoring visit report."""
from __future__ import annotations

import datetime as dt
import html
import io

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation

from accounts.middleware import database_unavailable
from accounts.models import Profile
from core.models import AuditEvent
from crfs import monitoring
from randomisation import kitlist, services
from reports.enrolment_pdf import build_enrolment_report
from supply import services as supply
from supply.models import KitStatus
from tests import factories
from tests.conftest import PASSWORD
from tests.outcomes.test_outcomes_pages import event, pdf_text
from trials.models import Role

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

    text = page_text(client.get(reverse("randomise", args=[trial.slug, participant.study_id])))

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
    for label in (b"Certificat de randomisation", b"(Centre)", b"(Strate)", b"Premier kit",
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
    assert "1 randomisé sur 118 prévus" in text
    assert ">Français</option>" in text and ">English</option>" in text  # each in its own name


def test_a_trial_without_a_target_reads_in_french(rectal_ready, client, client_for):
    trial, coordinator = rectal_ready
    factories.randomised(trial, by=coordinator)
    client_for(french(coordinator))

    home = page_text(client.get(reverse("home")))
    overview = " ".join(page_text(client.get(reverse("trial_detail", args=[trial.slug]))).split())

    assert "<p>1 randomisé</p>" in home
    assert "1 randomisé <span" in overview
    assert "objectif d'inclusions non précisé dans le protocole" in overview


def test_unblinding_mail_is_written_in_each_recipients_language(
        reminet_ready, make_user, statistician, django_capture_on_commit_callbacks):
    trial, coordinator = reminet_ready
    investigator = make_user("investigator", trial, trial.sites.order_by("code").first())
    sponsor = make_user("sponsor", trial)  # no profile: the site's default language, English
    french(statistician)
    allocation = services.randomise(factories.eligible_participant(trial, by=coordinator),
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
    day = timezone.localtime(allocation.unblindings.get().at).date()
    assert f"{day:%d/%m/%Y}" in fr.body and f"{day:%Y-%m-%d}" in en.body  # each its own format


@pytest.mark.parametrize("language, expected", [
    ("fr", "Liste de randomisation #1{nbsp}: strate épuisée"),
    ("en", "Allocation list #1: stratum exhausted"),
])
def test_list_exhaustion_alert_in_the_statisticians_language(
        reminet, statistician, coordinator_factory, django_capture_on_commit_callbacks,
        language, expected):
    from randomisation.models import Stratum

    coordinator = coordinator_factory(reminet)
    Profile.objects.update_or_create(user=statistician, defaults={"language": language})
    alist = factories.sealed_list(reminet, by=statistician, slots_per_stratum=2)
    key = "grade=G1;l1_response=objective_response"  # the default eligibility answers' stratum
    for _ in range(Stratum.objects.get(allocation_list=alist, key=key).size):
        services.randomise(factories.eligible_participant(reminet, by=coordinator), by=coordinator)
    extra = factories.eligible_participant(reminet, by=coordinator)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True), \
            pytest.raises(services.RandomisationError, match="no slot left"):
        services.randomise(extra, by=coordinator)  # the coordinator's language: English
    [message] = mail.outbox
    assert message.to == [statistician.email]
    assert message.subject == f"[{reminet.short_title}] " + expected.format(nbsp=NBSP)


# --------------------------------------------------------------------------- the newer pages


@pytest.fixture
def reminet_analysed(reminet, statistician, coordinator_factory):
    """REMINET with four participants randomised a year ago (arms alternate), one progressed while
    one of the other arm was still followed (so the log-rank test has something to compare)."""
    factories.scripted_list(reminet, by=statistician, arms=["LAN", "PBO"])
    coordinator = coordinator_factory(reminet)
    people = [factories.randomised(reminet, by=coordinator, days_ago=365) for _ in range(4)]
    event(people[0], "progression", coordinator, 90)
    event(people[1], "tumour_assessment", coordinator, 180)
    return reminet


def test_the_outcomes_page_speaks_french_to_the_statistician(reminet_analysed, statistician,
                                                              client, client_for):
    client_for(french(statistician))

    text = page_text(client.get(reverse("trial_outcomes", args=[reminet_analysed.slug])))

    assert "<h1>Résultats et analyse de survie</h1>" in text
    assert "4 participants randomisés analysés (en intention de traiter)." in text
    assert "Nombre de sujets à risque" in text and "Estimation de Kaplan–Meier" in text
    assert f"à 6 mois, IC exact à 90{NBSP}%" in text
    assert f"Test du log-rank{NBSP}: khi-deux" in text
    assert "<h2>Méthodes</h2>" in text and "intervalle de confiance exact (Clopper–Pearson)" in text
    assert "Rapport de risques, PBO contre LAN" in text and "Médiane" in text
    for english in ("Outcomes and survival analysis", "Number at risk", "Log-rank test",
                    "Methods", "Time runs from randomisation", "Hazard ratio", "Median:"):
        assert english not in text, english


def test_a_blinded_french_reader_gets_the_pooled_page_and_report_in_french(
        reminet_analysed, make_user, client, client_for):
    client_for(french(make_user("sponsor", reminet_analysed)))

    text = page_text(client.get(reverse("trial_outcomes", args=[reminet_analysed.slug])))
    assert "Résultats tous bras confondus uniquement" in text and "Tous les participants" in text
    assert "Pooled figures only" not in text and "All participants" not in text

    pdf = pdf_text(client.get(reverse("trial_outcomes_pdf", args=[reminet_analysed.slug])).content)
    assert "Rapport des résultats" in pdf and "tous bras confondus (aveugle)" in pdf
    assert "Outcomes report" not in pdf and "pooled (blinded)" not in pdf


def test_the_reports_page_and_a_built_report_are_french(reminet, make_user, client, client_for,
                                                        django_capture_on_commit_callbacks):
    client_for(french(make_user("sponsor", reminet)))
    url = reverse("report_list", args=[reminet.slug])

    text = page_text(client.get(url))
    assert "<h1>Rapports</h1>" in text and "<h2>Demander un rapport</h2>" in text
    assert f"Produire{NBSP}: Rapport d'inclusions" in text
    assert "Aucun rapport demandé pour l'instant." in text
    assert "Request a report" not in text and "<h1>Reports</h1>" not in text

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("report_request", args=[reminet.slug]),
                               {"kind": "enrolment"}, follow=True)
    assert "Votre rapport est en file d'attente" in page_text(response)
    assert AuditEvent.objects.get(action="report.requested").message.startswith(
        "Enrolment report #")  # the audit trail stays in one language

    text = page_text(client.get(url))  # built once the request committed
    assert "<h2>Rapports demandés</h2>" in text and "Requested reports" not in text
    assert ">Prêt</span>" in text  # a report's status, not a visit's "Faite"
    assert ">bras regroupés</span>" in text and ">pooled</span>" not in text


def test_the_exports_page_is_french(reminet, make_user, client, client_for):
    client_for(french(make_user("data_manager", reminet)))

    text = page_text(client.get(reverse("export_list", args=[reminet.slug])))

    assert "<h2>Essai complet</h2>" in text and "<h2>CRF au format CSV</h2>" in text
    assert "Les allocations apparaissent sous forme de codes de kit, jamais de bras." in text
    assert f"Centres inclus{NBSP}:" in text
    for english in ("Whole trial", "CRFs as CSV", "Sites included", "Pseudonymised"):
        assert english not in text, english


def test_the_two_factor_set_up_and_api_token_pages_are_french(reminet, coordinator_factory,
                                                              client, client_for):
    client_for(french(coordinator_factory(reminet)))  # no second factor needed, none set up

    text = page_text(client.get(reverse("two_factor_setup")))
    assert "<h1>Configurer la double authentification</h1>" in text
    assert f"Saisissez le code à 6 chiffres qu'affiche l'application{NBSP}:" in text
    assert ">Double authentification</a>" in text and ">Jeton d'API</a>" in text  # top bar
    assert "Set up two-factor authentication" not in text and "Two-factor" not in text

    text = page_text(client.get(reverse("api_token")))
    assert "<h1>Votre jeton d'API</h1>" in text and "Vous n'avez pas de jeton d'API." in text
    assert "Your API token" not in text


def test_the_enrolment_report_is_written_in_the_requesters_language(reminet_analysed, make_user):
    sponsor = french(make_user("sponsor", reminet_analysed))
    stream = io.BytesIO()
    with translation.override("fr"):  # as the report queue does for a French requester
        build_enrolment_report(reminet_analysed, viewer=sponsor, stream=stream)
    text = pdf_text(stream.getvalue())

    for french_text in ("Rapport d'inclusions - REMINET", "Flux des participants",
                        "Tous bras confondus (en aveugle)", "Complétude des données",
                        "% saisis", "Retirés de l'essai", "Randomisés", "Par centre"):
        assert french_text in text, french_text
    for english in ("Enrolment report", "Participant flow", "Data completeness", "% entered"):
        assert english not in text, english


def test_the_503_page_is_french_and_says_so_in_its_lang(rf):
    with translation.override("fr"):  # no database, no profile: the browser's language
        text = html.unescape(database_unavailable(rf.get("/trials/")).content.decode())

    assert '<html lang="fr">' in text and "<h1>Service indisponible</h1>" in text
    assert "La base de données est injoignable." in text and "Service unavailable" not in text


def test_the_audit_log_and_query_metrics_pages_are_french(reminet, make_user, client,
                                                          client_for):
    """Issue 20: the audit log's filters and their errors, the query metrics' columns."""
    client_for(french(make_user("data_manager", reminet)))

    text = page_text(client.get(reverse("audit_log", args=[reminet.slug]),
                                {"start": "2026-06-10", "end": "2026-06-01", "user": "ghost"}))
    assert "<h1>Journal d'audit</h1>" in text and "Aucun utilisateur nommé ghost." in text
    assert "La date de fin (2026-06-01) précède la date de début (2026-06-10)." in text
    text = page_text(client.get(reverse("audit_log", args=[reminet.slug])))
    assert "Télécharger en CSV" in text and "Tous vos sites" in text
    text = page_text(client.get(reverse("query_metrics", args=[reminet.slug])))
    assert "<h1>Indicateurs des requêtes</h1>" in text and "Délai médian de clôture" in text
    for english in ("Audit log", "Download as CSV", "Median days to close", "By form"):
        assert english not in text, english


# --------------------------------------------------------------------------- supply, monitoring


def test_kit_list_refusals_are_french(reminet, statistician):
    later = (timezone.localdate() + dt.timedelta(days=300)).isoformat()
    table = "\n".join(["kit_number,arm,lot,expires_on", f"3479AC,LAN,L1,{later}",
                       f"3479AC,PBO,L1,{later}"])  # row 3 repeats row 2
    with translation.override("fr"):
        with pytest.raises(ValidationError) as generated:
            kitlist.generate(reminet, by=statistician, kits=41, lot_size=10,
                             expires_on=dt.date(2020, 1, 1))
        with pytest.raises(kitlist.KitListImportError) as imported:
            kitlist.import_list(reminet, table, by=statistician)

    errors = generated.value.message_dict
    assert errors["expires_on"] == ["La date de péremption doit être postérieure à aujourd'hui."]
    assert errors["kits"][0].startswith("Le nombre de kits doit être un multiple de ")
    assert dict(imported.value.rows)[3] == "le numéro de kit 3479AC répète la ligne 2"


def test_a_refused_receipt_and_the_kit_statuses_are_french(reminet, statistician):
    kitlist.seal(kitlist.generate(reminet, by=statistician, kits=40, lot_size=10,
                                  expires_on=timezone.localdate() + dt.timedelta(days=700)),
                 by=statistician)
    site = reminet.sites.order_by("code").first()
    shipment = supply.dispatch_shipment(reminet, site=site, by=factories.supply_manager(reminet),
                                        quantities={a.code: 2 for a in reminet.arms.all()})
    with translation.override("fr"), pytest.raises(supply.SupplyError) as refused:
        supply.receive_shipment(shipment, by=factories.site_pharmacist(reminet, site),
                                outcomes={"ZZZZZZ": "received"})

    assert refused.value.message == (
        f"Réception refusée{NBSP}: le(s) kit(s) ZZZZZZ ne sont pas dans l'envoi {shipment.number}. "
        "Rien n'a été enregistré.")
    with translation.override("fr"):
        assert [str(s.label) for s in (KitStatus.IN_TRANSIT, KitStatus.QUARANTINED)] == [
            "En transit", "En quarantaine"]
        manager = str(Role.SUPPLY_MANAGER.label)
    assert manager == "Gestionnaire des approvisionnements (non aveugle)"


def test_the_monitoring_visit_report_is_french(reminet, make_user):
    site = reminet.sites.order_by("code").first()
    monitor = make_user("monitor", reminet, site)
    today = timezone.localdate()
    with translation.override("fr"), pytest.raises(ValidationError) as refused:
        monitoring.record_visit(site, by=monitor, visited_on=today, findings=" ")
    assert refused.value.message_dict["findings"] == [
        f"Rédigez les constats («{NBSP}aucun{NBSP}» s'il n'y en a pas)."]
    monitoring.record_visit(site, by=monitor, visited_on=today, findings="RAS")

    with translation.override("fr"):
        text = pdf_text(monitoring.pdf(monitoring.report(site, today, today)))
        role = str(Role.MONITOR.label)

    for french_text in ("Rapport de visite de monitoring", "Visites et constats", "Moniteur",
                        "Constats", "Requêtes ouvertes sur la période", "RAS"):
        assert french_text in text, french_text
    for english in ("Monitoring visit report", "Visits and findings", "Queries raised"):
        assert english not in text, english
    assert role == "Moniteur (attaché de recherche clinique)"
