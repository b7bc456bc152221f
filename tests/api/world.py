"""A trial with something at every level, at two of its sites: what the API tests, the
permission matrix and the fuzzing fill URLs with.

At each site: one randomised participant with their visit schedule, their eligibility CRF
(complete) and one data query on it, raised by the data manager; and one participant only
screened.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from crfs import services as crfs
from crfs.models import CRFRecord, DataQuery
from patients.models import Participant, Visit
from reports import services as reports
from reports.models import ReportRequest
from supply import services as supply_services
from supply.models import Kit, KitAssignment, KitList, KitStatus, Shipment
from tests import factories
from trials.models import Membership, Site, Trial


@dataclass
class Place:
    """One site's objects, by what a URL names."""

    trial: Trial
    site: Site
    participant: Participant   # randomised
    screened: Participant      # only screened
    visit: Visit
    record: CRFRecord
    query: DataQuery
    report: ReportRequest | None = None  # see ``built_report``
    sae: object | None = None            # see ``signed_sae``: a safety.SAEReport
    shipment: object | None = None       # see ``with_supply``: a supply.Shipment on its way
    excursion: object | None = None      # see ``with_supply``: a supply.Excursion undecided
    supply: Supply | None = None         # see ``with_supply``: the site's stock and kits

    def kwargs(self) -> dict[str, object]:
        """Values for every URL parameter; ``crf_code`` is one the visit expects."""
        supply = self.supply or Supply()
        return {"slug": self.trial.slug, "study_id": self.participant.study_id,
                "visit_id": self.visit.pk, "record_id": self.record.pk,
                "query_id": self.query.pk, "crf_code": (self.visit.crfs or ["eligibility"])[0],
                "form": "long", "report_id": self.report.pk if self.report else 0,
                "sae_id": self.sae.pk if self.sae else 0, "number": 0,
                "uidb64": "x", "token": "x", "site_code": self.site.code,
                "shipment_number": self.shipment.number if self.shipment else 0,
                "excursion_id": self.excursion.pk if self.excursion else 0,
                "version": 1, "variant": "annotated",
                "list_number": supply.kit_list.number if supply.kit_list else 0,
                "assignment_id": supply.assignment.pk if supply.assignment else 0}


@dataclass
class Supply:
    """A place's supply objects (none in a trial without kits)."""

    shipment: object | None = None    # the shipment that stocked the site (received)
    kit_list: object | None = None    # the trial's sealed kit list
    assignment: object | None = None  # the participant's kit given at randomisation


def with_supply(place: Place) -> Place:
    """In a trial that dispenses kits (every site stocked by ``tests.factories.stocked``): the
    shipment that stocked the site, the kit list and the participant's first kit (``supply``);
    a shipment dispatched to the site and not yet received (``shipment``) and a temperature
    excursion reported there on one kit of its stock, undecided (``excursion``)."""
    found = Supply()
    if supply_services.settings_of(place.trial) is not None:
        found.shipment = (Shipment.objects.filter(trial=place.trial, site=place.site)
                          .order_by("number").first())
        found.kit_list = KitList.objects.filter(trial=place.trial).order_by("number").first()
        found.assignment = (KitAssignment.objects.filter(participant=place.participant)
                            .order_by("assigned_at", "pk").first())
        arms = place.trial.arms.order_by("position")
        place.shipment = supply_services.dispatch_shipment(
            place.trial, site=place.site, by=factories.supply_manager(place.trial),
            quantities={a.code: 1 for a in arms})
        kit = (Kit.objects.filter(site=place.site, status=KitStatus.AVAILABLE)
               .order_by("number").first())
        place.excursion = supply_services.report_excursion(
            place.site, numbers=[kit.number], description="Fridge at 11 °C for 2 hours.",
            by=factories.site_pharmacist(place.trial, place.site))
    place.supply = found
    return place


def build(trial: Trial, site: Site, *, staff, data_manager) -> Place:
    """``staff``: a coordinator of every site of ``trial`` (the list must be sealed)."""
    participant = factories.randomised(trial, site, by=staff, days_ago=30)
    screened = factories.participant(trial, site, by=staff)
    visit = participant.visits.order_by("target_date", "code").first()
    record = CRFRecord.objects.get(participant=participant, crf_code="eligibility")
    query = crfs.raise_query(record, by=data_manager, field_path="screening_date",
                             text="Please check the screening date.")
    return Place(trial, site, participant, screened, visit, record, query)


def ready(trial: Trial, *, statistician, make_user) -> tuple[object, object]:
    """A sealed list for ``trial``, an all-sites coordinator and data manager."""
    factories.sealed_list(trial, by=statistician)
    staff = make_user("coordinator", trial)
    data_manager = make_user("data_manager", trial)
    return staff, data_manager


def built_report(trial: Trial, *, by, kind: str = "enrolment", participant=None
                 ) -> ReportRequest:
    """A report requested by ``by`` and built at once (as the worker would), with their rights
    (a casebook: of ``participant``)."""
    report = reports.request_report(trial, kind, by=by, participant=participant)
    reports.build(report.pk, token="world")
    return reports.report_of(trial, report.pk)


def add_role(user, role: str, trial: Trial, site: Site | None) -> None:
    Membership.objects.create(user=user, trial=trial, site=site, role=role)


def signed_sae(place: Place, *, investigator, password: str):
    """A serious adverse event of the place's participant, its initial report signed."""
    from safety import services as safety
    from safety.models import SAEReport
    from scheduling.services import save_crf_and_replan

    day = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    record = save_crf_and_replan(place.participant, "adverse_events", {
        "any_event": True, "events": [{"term": "Lung infection", "grade": 3, "serious": True,
                                       "attribution": "possible", "ongoing": True,
                                       "start_date": day}]},
        by=investigator, complete=False)
    report = SAEReport.objects.get(source_record=record)
    safety.save_draft(report, {
        "criteria": ["hospitalisation"], "onset_date": report.versions.get().onset_date,
        "aware_at": report.aware_at, "outcome": "recovering", "death_date": None,
        "causality": {p["code"]: "not_related" for p in safety.products(place.trial)},
        "narrative": "Admitted for pneumonia."}, by=investigator)
    safety.sign_version(report.versions.get(), by=investigator, password=password)
    place.sae = report
    return report
