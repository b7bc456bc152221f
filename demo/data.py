"""Demo data: what ``manage.py demo_setup`` creates, and the tests reuse.

Only for the embedded demo and the tests; nothing in the product calls it.
"""
from __future__ import annotations

import datetime as dt
import math
import random
import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone

from crfs import monitoring, verification
from crfs import screening as crf_screening, services as crfs
from crfs.forms import visible
from crfs.models import CRFRecord, CRFSignature, MonitoringVisit, SignatureMeaning
from patients.models import (RANDOMISED_STATUSES, Participant, ScreeningLogEntry, Visit,
                             VisitStatus)
from patients.screening import non_inclusion_reasons, record_screening_log_entry
from patients.services import record_consent, register_participant
from patients.windows import as_date
from randomisation import services as randomisation
from reports.models import ReportRequest
from reports.services import request_report
from scheduling import services as scheduling
from scheduling.services import save_crf_and_replan as save_crf
from supply import services as supply
from supply.models import Kit, KitStatus
from supply.resupply import levels as supply_levels
from trials.models import Trial, crf_of
from trials.protocol import languages_of
from trials.selectors import term_list


def eligibility_answers(trial: Trial, **overrides) -> dict:
    """Answers to the trial's eligibility CRF that make a participant eligible: every inclusion
    criterion yes, every exclusion no, the first choice of every other choice field, a valid
    value for the rest. ``overrides`` set chosen fields (e.g. a stratification factor)."""

    crf = crf_of(trial.current_version_id, "eligibility")
    kinds = {c["code"]: c["kind"] for c in trial.definition["eligibility"]}
    data = {}
    for field in crf["fields"]:
        code, kind = field["code"], field["type"]
        if code in kinds:
            data[code] = kinds[code] == "inclusion"
        elif kind == "choice":
            data[code] = field["choices"][0]["code"]
        elif kind == "date":
            data[code] = timezone.localdate().isoformat()
        elif kind == "integer" and 1900 <= field.get("min", 0) and field.get("max", 0) <= 2100:
            # A year (of birth): an adult's, so that a criterion derived from it holds.
            data[code] = timezone.localdate().year - 60
        elif kind in ("integer", "decimal"):
            value = field.get("min", 0) if field.get("min", 0) > 0 else 1
            value = max(value, 2) if field.get("max", 10) >= 2 else value
            data[code] = int(value) if kind == "integer" else str(Decimal(str(value)))
        elif kind == "yesno":
            data[code] = False
        elif kind == "multichoice":
            data[code] = [field["choices"][0]["code"]]
        else:
            data[code] = None
    data.update(overrides)
    return data


# How long ago the demo's randomised participants (1st, 2nd, 3rd… of each site) were
# randomised: a spread, so that visits are done, overdue, open now and upcoming at once.
DEMO_DAYS_AGO = [100, 45, 200, 12, 300]
STOPS_TREATMENT = 2  # the third randomised participant of each site stops treatment early


def confirm_eligibility(participant, investigators: dict[int, tuple]) -> None:
    """The investigator of the participant's site (``investigators``: site id → (user,
    password)) confirms eligibility through the service, as in the product, when the protocol
    asks for it."""
    from crfs import eligibility

    if not eligibility.confirmation_required(participant):
        return
    user, password = investigators[participant.site_id]
    crfs.confirm_eligibility(participant, by=user, password=password)


def populate(trial: Trial, *, coordinator, statistician, per_site: dict[str, int],
             investigators: dict[int, tuple], statistician_password: str) -> list[str]:
    """Give ``trial`` a sealed allocation list and participants at every stage at each site:
    ``per_site["randomised"]`` randomised, ``["ready"]`` consented and eligible (waiting for a
    coordinator to randomise), ``["screened"]`` only screened. Eligibility is confirmed by the
    site's investigator (``investigators``: site id → (user, password)) before randomisation;
    the first site's ready participants are left awaiting that confirmation, the other sites'
    are confirmed. The demo shows a trial in use: it goes live (through the product's own
    step, with the statistician's password) before anyone is registered. Safe to run again: it
    only tops up.
    """
    import datetime as dt


    done = []
    if randomisation.active_list(trial, "live") is None:
        alist = randomisation.generate_list(trial, by=statistician, seed=f"demo-{trial.slug}",
                                            purpose="live")
        randomisation.seal_and_activate(alist, by=statistician)
        done.append(f"{trial.slug}: allocation list #{alist.number} sealed")
    if trial.is_test_mode:
        trial = randomisation.go_live(trial, by=statistician, password=statistician_password)
        done.append(f"{trial.slug}: live")
    factors = trial.definition.get("stratification_factors", [])
    today = timezone.localdate()
    for site_index, site in enumerate(trial.sites.filter(active=True).order_by("code")):
        existing = Participant.objects.filter(site=site).count()
        wanted = sum(per_site.values())
        for i in range(existing, wanted):
            randomised = i < per_site["randomised"]
            # Randomised participants get a past (see ``visit_history``): screen them before it.
            days_ago = DEMO_DAYS_AGO[i % len(DEMO_DAYS_AGO)] if randomised else 0
            p = register_participant(trial, site, by=coordinator,
                                     screened_on=today - dt.timedelta(days=40 - 3 * i + days_ago))
            if i >= per_site["randomised"] + per_site["ready"]:
                continue  # screened only
            p = record_consent(p, consent_date=p.screened_on, version="1.0", by=coordinator)
            # Spread participants over the strata, so the balance report has something to show.
            overrides = {}
            for f_index, factor in enumerate(factors):
                source = factor["source"]["field"]
                levels = factor["levels"]
                level = levels[(i + site_index + f_index * (i // 2)) % len(levels)]
                overrides[source] = level["values"][0]
            save_crf(p, "eligibility", eligibility_answers(trial, **overrides), by=coordinator,
                     complete=True)
            if randomised or site_index > 0:
                confirm_eligibility(p, investigators)
            if randomised:
                randomisation.randomise(p, by=coordinator, at=days_ago_at(days_ago))
                visit_history(p, by=coordinator, days_ago=days_ago,
                              stop_treatment=(i == STOPS_TREATMENT))
        done.append(f"{trial.slug} {site.code}: {wanted} participants")
    return done


def screening_showcase(trial: Trial, *, coordinator, data_manager) -> list[str]:
    """The screening the flow diagram starts from: at every recruiting site, screening log
    entries (one per reason of the protocol, spread over the last months) and a screen
    failure (a completed eligibility form with two criteria not met); where the protocol
    allows re-screening, a screen failure of the first site screened again (episode 1 kept,
    episode 2 open). And one participant recorded as randomised in error at the last site.
    Runs once per trial (skipped when the trial has a screening log)."""
    if ScreeningLogEntry.objects.filter(trial=trial).exists():
        return []
    done = []
    today = timezone.localdate()
    reasons = non_inclusion_reasons(trial)
    criteria = trial.definition["eligibility"]
    inclusion = next(c["code"] for c in criteria if c["kind"] == "inclusion")
    exclusion = next((c["code"] for c in criteria if c["kind"] == "exclusion"), None)
    sites = list(trial.sites.filter(active=True).order_by("code"))
    for site_index, site in enumerate(sites):
        for i, reason in enumerate(reasons[site_index::2] or reasons[:1]):
            record_screening_log_entry(trial, site=site, reason=reason["code"], by=coordinator,
                                       screened_on=today - dt.timedelta(days=10 + 17 * i))
        failed = {inclusion: False, **({exclusion: True} if exclusion else {})}
        p = register_participant(trial, site, by=coordinator,
                                 screened_on=today - dt.timedelta(days=5))
        p = record_consent(p, consent_date=p.screened_on, version="1.0", by=coordinator)
        save_crf(p, "eligibility", eligibility_answers(trial, **failed), by=coordinator,
                 complete=True)
        done.append(f"{trial.slug} {site.code}: screening log, screen failure {p.study_id}")
        if site_index == 0 and crf_screening.rescreening_allowed(p):
            p.refresh_from_db()
            crf_screening.rescreen(p, by=coordinator,
                                   reason="Demo: the criterion may be met after more treatment.")
            done.append(f"{trial.slug}: {p.study_id} screened again (episode 1 kept)")
    flagged = (Participant.objects.filter(site=sites[-1], status__in=RANDOMISED_STATUSES)
               .order_by("study_id").first())
    if flagged is not None:
        randomisation.record_randomised_in_error(
            flagged.allocation, by=data_manager,
            reason=f"Found at monitoring: {exclusion or inclusion} applied at randomisation "
                   "(demo).")
        done.append(f"{trial.slug}: {flagged.study_id} randomised in error")
    return done


def days_ago_at(days: int):
    """Demo and tests only: the instant ``days`` before now, to date a randomisation made for
    past data (``randomise(..., at=...)``). In the product a randomisation is dated when it
    happens, and an allocation is never rewritten (the database refuses it)."""
    return timezone.now() - dt.timedelta(days=days)


# Adverse events of the demo: NCI-CTCAE v4.03 terms (trials/reference/ctcae-4.03.csv), as the
# protocols' term fields offer them.
AE_TERMS = ["Fatigue", "Diarrhea", "Nausea", "Neutrophil count decreased",
            "Peripheral sensory neuropathy", "Abdominal pain"]


def term_grades(crf: dict, label: str) -> list[int]:
    """The grades the term ``label`` defines in the terminology of ``crf``'s term field."""
    field = next(f for g in crf["fields"] for f in g.get("fields", []) if f["type"] == "term")
    term = term_list(field["terminology"]).find(label)
    if term is None:
        raise ValueError(f"{label!r} is not a term of {field['terminology']}")
    return term.grade_numbers


def crf_answers(crf: dict, *, on, **overrides) -> dict:
    """Complete, valid answers to any CRF for the demo: every date ``on``, yes to yes/no
    questions, the first choice, the smallest number, "Demo" for required text; answers to
    questions hidden by ``show_if`` are removed, as the form would."""

    data: dict = {}
    for field in crf["fields"]:
        kind, code = field["type"], field["code"]
        if field.get("derived"):
            value = None
        elif kind == "date":
            value = on.isoformat()
        elif kind == "choice":
            value = field["choices"][0]["code"]
        elif kind == "multichoice":
            value = [field["choices"][0]["code"]]
        elif kind == "yesno":
            value = True
        elif kind == "integer":
            value = int(field.get("min", 0))
        elif kind == "decimal":
            value = str(field.get("min", 0))
        elif kind == "text":
            value = "Demo" if field.get("required") else None
        elif kind == "term":
            value = None  # a term of the protocol's terminology: the caller names it
        else:  # group
            value = []
        data[code] = value
    data.update(overrides)
    for field in crf["fields"]:
        if not visible(field, data, crf["fields"]):
            data[field["code"]] = None
    return data


def as_planned(crf: dict, on: dt.date) -> dict:
    """Demo only: answers a form's soft checks expect where the defaults would fail them (the
    rectal trial's immunonutrition, given for the 7 days before surgery)."""
    codes = {f["code"] for f in crf["fields"]}
    planned = {"immunonutrition_days": 7,
               "immunonutrition_start": (on - dt.timedelta(days=7)).isoformat()}
    return {k: v for k, v in planned.items() if k in codes}


def visit_history(participant, *, by, days_ago: int, stop_treatment: bool = False) -> None:
    """Demo only: give a participant randomised ``days_ago`` days ago
    (``randomise(..., at=days_ago_at(days_ago))``) their visits' history.

    Visits whose window closed more than two weeks ago are done, in their window (the fourth
    one late: a protocol deviation; the sixth one missed); visits closed more recently are left
    overdue, the open ones open. A CRF that carries an anchor (the surgery form at the surgery
    visit, the injection form at the first injection) is entered with the visit, which
    schedules the visits hanging on it. ``stop_treatment``: the event that ends the fewest
    visit templates (REMINET: end of treatment) is recorded after 150 days: later injections
    become not applicable, tumour assessments go on.
    """
    import datetime as dt


    p = Participant.objects.select_related("site").get(pk=participant.pk)
    definition = p.definition
    crfs = {c["code"]: c for c in definition["crfs"]}
    anchor_crfs = {a["source"]["crf"]: a for a in definition.get("anchors", [])}
    today = timezone.localdate()
    randomised_on = timezone.localdate(p.allocation.randomised_at)
    stop = _least_stopping_event(definition) if stop_treatment else None
    stop_on = randomised_on + dt.timedelta(days=150)
    recorded: set[str] = set()
    count = 0
    while True:
        visit = (Visit.objects.filter(participant=p, status=VisitStatus.PLANNED, unscheduled=False,
                                      window_closes__lt=today - dt.timedelta(days=14))
                 .order_by("target_date", "code", "occurrence").first())
        if stop is not None and stop_on <= today and (visit is None
                                                      or visit.target_date > stop_on):
            code = stop["source"]["crf"]
            save_crf(p, code, crf_answers(crfs[code], on=stop_on), by=by, complete=True)
            stop = None
            continue
        if visit is None:
            break
        count += 1
        span = (visit.window_closes - visit.window_opens).days
        done_on = visit.window_opens + dt.timedelta(days=span * 2 // 3)
        if count == 6:
            scheduling.mark_visit_missed(visit, by=by, reason="Patient in hospital elsewhere")
            continue
        if count == 4:
            done_on = visit.window_closes + dt.timedelta(days=4)  # late: a deviation
        scheduling.record_visit_done(visit, done_on=min(done_on, today), by=by)
        for code in visit.crfs:
            if code in anchor_crfs and code not in recorded:
                recorded.add(code)
                on = min(done_on, today)
                save_crf(p, code, with_kit(p, visit, code, crf_answers(
                    crfs[code], on=on, **as_planned(crfs[code], on)), by=by), by=by,
                    complete=True, visit=visit)


def _least_stopping_event(definition: dict) -> dict | None:
    """The event named by the fewest repeating visits (and that does not end all visits)."""
    counts = {}
    for visit in definition["visits"]:
        for code in visit.get("repeat", {}).get("until_event", []):
            counts[code] = counts.get(code, 0) + 1
    events = [e for e in definition.get("events", [])
              if e["code"] in counts and not e.get("ends_all_visits")]
    return min(events, key=lambda e: counts[e["code"]], default=None)


def crf_showcase(trial: Trial, *, investigator, data_manager, password: str) -> list[str]:
    """Demo only: CRFs at every step of their life at the trial's first site, so that the demo
    accounts meet signatures, locks and queries at once.

    Each randomised participant's baseline demographics are complete; the first one's are
    signed by ``investigator``, the second one's signed and locked by ``data_manager``, the
    third one's questioned by ``data_manager`` (an open query on the weight). Where the protocol
    has a soft edit check on a date counted from randomisation (the rectal trial's surgery
    within 21 days), one such date is corrected past the limit, as when an operative report
    arrives late: the check raises an automatic query. Safe to run again: does nothing once the
    site has signatures.
    """
    import datetime as dt


    site = trial.sites.filter(active=True).order_by("code").first()
    # Signatures other than the investigators' confirmations of eligibility (``populate``).
    signed = (CRFSignature.objects.filter(record__participant__site=site)
              .exclude(meaning=SignatureMeaning.ELIGIBILITY))
    if site is None or signed.exists():
        return []
    participants = list(Participant.objects.filter(site=site, status__in=RANDOMISED_STATUSES)
                        .select_related("site", "trial").order_by("study_id"))
    today = timezone.localdate()
    records = []
    for i, p in enumerate(participants):
        baseline = Visit.objects.filter(participant=p, code="baseline").first()
        crf = crf_of(p.protocol_version_id, "demographics")
        if baseline is None or crf is None or "demographics" not in baseline.crfs:
            continue
        answers = crf_answers(crf, on=today)
        answers.update({k: v for k, v in {"year_of_birth": 1948 + 3 * i,
                                          "height_cm": f"{160 + 4 * i}.0",
                                          "weight_kg": f"{58 + 5 * i}.0",
                                          "sex": ["female", "male"][i % 2]}.items()
                        if k in answers})
        records.append(scheduling.save_crf_and_replan(p, "demographics", answers, by=investigator,
                                     complete=True, visit=baseline))
    done = [f"{trial.slug} {site.code}: {len(records)} baseline demographics complete"]
    if len(records) >= 1:
        crfs.sign_crf(records[0], by=investigator, password=password, meaning="accurate")
        done.append(f"{records[0].participant.study_id} demographics signed")
    if len(records) >= 2:
        crfs.sign_crf(records[1], by=investigator, password=password, meaning="accurate")
        crfs.lock_crf(records[1], by=data_manager)
        done.append(f"{records[1].participant.study_id} demographics signed and locked")
    if len(records) >= 3:
        crfs.raise_query(records[2], by=data_manager, field_path="weight_kg",
                         text="The weight differs from the screening notes (by 6 kg). Which "
                              "is right? Please check the source document.")
        done.append(f"{records[2].participant.study_id} demographics: open query")
    for crf in trial.definition.get("crfs", []):
        for check in crf.get("checks", []):
            # A soft limit of days after randomisation ("surgery_date <= anchor.randomisation
            # + 21"), passed by 4 days.
            limit = re.fullmatch(r"(\w+) <= anchor\.randomisation \+ (\d+)", check["expect"])
            if check.get("severity") != "soft" or check.get("when") or limit is None:
                continue
            check = dict(check, field=limit[1], days=int(limit[2]))
            for record in (CRFRecord.objects.filter(participant__site=site, crf_code=crf["code"])
                           .select_related("participant__allocation").order_by("pk")):
                randomised_on = timezone.localdate(record.participant.allocation.randomised_at)
                late = randomised_on + dt.timedelta(days=check["days"] + 4)
                if late > today:
                    continue
                try:
                    scheduling.save_crf_and_replan(record.participant, crf["code"],
                                  dict(record.data, **{check["field"]: late.isoformat()}),
                                  by=investigator, complete=record.status != "draft",
                                  record=record, reason="Operative report received: the date "
                                                        "was corrected")
                except ValidationError:
                    continue
                done.append(f"{record.participant.study_id} {crf['code']}: automatic query")
                return done
    return done


def monitoring_showcase(trial: Trial, *, monitor, investigator) -> list[str]:
    """Demo only: the monitor's work at the trial's first site (after ``crf_showcase``): the
    completed eligibility forms (key data of both protocols) and a baseline demographics form
    verified against the source, the weight of another verified, then changed by the
    investigator (its mark removed, as the CRF page and the report say), and a monitoring visit
    with its findings. Safe to run again: does nothing once the site has a monitoring visit."""
    site = trial.sites.filter(active=True).order_by("code").first()
    if site is None or MonitoringVisit.objects.filter(site=site).exists():
        return []
    done = []
    records = (CRFRecord.objects.filter(participant__site=site,
                                        participant__status__in=RANDOMISED_STATUSES)
               .exclude(status="draft").select_related("participant", "visit")
               .order_by("participant__study_id", "pk"))
    eligibility = [r for r in records if r.crf_code == "eligibility"][:3]
    demographics = [r for r in records if r.crf_code == "demographics"]
    for record in eligibility + demographics[:1]:
        verification.verify(record, by=monitor)
        done.append(f"{record.participant.study_id} {record.crf_code}: verified against the "
                    f"source")
    # The third demographics form (its weight questioned by the data manager): the monitor
    # verifies the height and the weight; the investigator then corrects the weight.
    if len(demographics) >= 3 and demographics[2].status == "complete":
        record = demographics[2]
        verification.verify(record, by=monitor, paths=["height_cm", "weight_kg"])
        weight = float(record.data.get("weight_kg") or 70) + 6
        scheduling.save_crf_and_replan(
            record.participant, "demographics", dict(record.data, weight_kg=f"{weight:.1f}"),
            by=investigator, complete=True, record=record, visit=record.visit,
            reason="Weight of the screening notes, the source document")
        done.append(f"{record.participant.study_id} demographics: weight changed after its "
                    f"verification (mark removed)")
    monitoring.record_visit(
        site, by=monitor, visited_on=timezone.localdate() - dt.timedelta(days=1),
        findings="Eligibility of the first participants verified against the source. "
                 "Delegation log: the second coordinator has not signed it yet. "
                 "Consent forms filed and complete.")
    done.append(f"{trial.slug} {site.code}: monitoring visit recorded")
    return done


# Demo outcome model (demo only, not a protocol fact): exponential times whose medians differ
# by arm, in the order the protocol lists the arms, so per-arm curves separate visibly.
DEMO_MEDIAN_PFS_MONTHS = [13.0, 7.5]
DEMO_MEDIAN_OS_MONTHS = [30.0, 20.0]
DAYS_PER_MONTH = 365.25 / 12


def outcome_showcase(trial: Trial, *, coordinator, per_site: int,
                     investigators: dict[int, tuple]) -> list[str]:
    """Demo only: a follow-up cohort with outcomes, so that the Outcomes page has curves at once.

    ``per_site`` more participants per site, randomised from 7 months ago to a little beyond the
    end of follow-up (rectal: 30 months, REMINET: 66), each with a drawn
    time to progression and to death (medians by arm, ``DEMO_MEDIAN_*``): progressions (site of
    progression mostly the first choice), deaths, end of treatment where the protocol has it,
    end of study at the end of follow-up; their visits done up to the event on their target
    date, tumour assessments at those visits, adverse events graded at some, and the
    post-operative Clavien-Dindo assessment where scheduled. Every write goes through the
    services. Then every randomised participant of the trial gets the tumour assessments of
    their visits already done (the last one is PFS's censoring date). Safe to run again: does
    nothing once the trial has a death recorded.
    """
    import datetime as dt


    if CRFRecord.objects.filter(participant__trial=trial, crf_code="death").exists():
        return []
    rng = random.Random(f"demo-outcomes-{trial.slug}")
    definition = trial.definition
    crfs = {c["code"]: c for c in definition["crfs"]}
    follow_up = definition["trial"].get("follow_up_months", 24)
    arm_index = {code: i for i, code in enumerate(trial.arms.order_by("position")
                                                  .values_list("code", flat=True))}
    events = {e["code"]: e for e in definition.get("events", [])}
    today = timezone.localdate()
    done = []
    missing_form_shown = False
    first_site = trial.sites.filter(active=True).order_by("code").first()
    for site in trial.sites.filter(active=True).order_by("code"):
        for i in range(per_site):
            months_ago = 7 + (follow_up - 1) * (i + 0.5) / per_site + rng.uniform(-1, 1)
            days_ago = int(months_ago * DAYS_PER_MONTH)
            p = register_participant(trial, site, by=coordinator,
                                     screened_on=today - dt.timedelta(days=days_ago + 10))
            p = record_consent(p, consent_date=p.screened_on, version="1.0", by=coordinator)
            save_crf(p, "eligibility", eligibility_answers(trial), by=coordinator, complete=True)
            confirm_eligibility(p, investigators)
            randomisation.randomise(p, by=coordinator, at=days_ago_at(days_ago))
            p.refresh_from_db()
            arm = arm_index.get(p.allocation.arm.code, 0) % len(DEMO_MEDIAN_PFS_MONTHS)
            randomised_on = timezone.localdate(p.allocation.randomised_at)

            def day(months: float) -> dt.date:
                return randomised_on + dt.timedelta(days=max(1, int(months * DAYS_PER_MONTH)))

            pfs = rng.expovariate(math.log(2) / DEMO_MEDIAN_PFS_MONTHS[arm])
            death = rng.expovariate(math.log(2) / DEMO_MEDIAN_OS_MONTHS[arm])
            if death < pfs and rng.random() < 0.7:
                death = pfs + rng.uniform(1, 8)  # most deaths follow a progression
            last = today - dt.timedelta(days=20)
            horizon_day = randomised_on + dt.timedelta(days=round(follow_up * DAYS_PER_MONTH) + 1)
            progression_day = day(pfs) if day(pfs) < min(last, horizon_day) else None
            death_day = day(death) if day(death) < min(last, horizon_day) else None
            if progression_day and death_day and death_day <= progression_day:
                progression_day = None
            until = death_day or min(last, horizon_day)
            # Most progressions are seen on a scan (a tumour assessment with a new lesion, on
            # the progression day), the others are clinical. The first participant of the trial
            # whose scan shows progression has no progression form yet: the automatic query
            # that asks for it is on their scan (crfs.agreement).
            radiological = progression_day is not None and rng.random() < 0.8
            awaiting_form = radiological and not missing_form_shown and site == first_site
            missing_form_shown = missing_form_shown or awaiting_form
            if progression_day and "progression" in crfs and not awaiting_form:
                site_field = next((f for f in crfs["progression"]["fields"]
                                   if f["type"] == "multichoice"), None)
                extra = {"type": "radiological" if radiological else "clinical"}
                if site_field is not None:
                    choices = [c["code"] for c in site_field["choices"]]
                    extra[site_field["code"]] = ([choices[0]] if rng.random() < 0.8
                                                 else [choices[-1]])
                save_crf(p, "progression", crf_answers(crfs["progression"], on=progression_day,
                                                       **extra), by=coordinator, complete=True)
            stop = events.get("end_of_treatment")
            if stop is not None and not progression_day:
                stop_day = day(rng.uniform(4, 10))
                if stop_day < until:
                    code = stop["source"]["crf"]
                    save_crf(p, code, crf_answers(crfs[code], on=stop_day), by=coordinator,
                             complete=True)
            if death_day:
                save_crf(p, "death", crf_answers(crfs["death"], on=death_day,
                                                 cause="disease_progression"),
                         by=coordinator, complete=True)
                if "end_of_study" in crfs:  # the record the protocol expects beside a death
                    save_crf(p, "end_of_study", crf_answers(crfs["end_of_study"], on=death_day,
                                                            reason="death"),
                             by=coordinator, complete=True)
            elif until == horizon_day and "end_of_study" in crfs:
                save_crf(p, "end_of_study", crf_answers(crfs["end_of_study"], on=horizon_day,
                                                        reason="completed_follow_up"),
                         by=coordinator, complete=True)
            _visits_until(p, by=coordinator, until=min(until, last), rng=rng, crfs=crfs,
                          assess_until=(progression_day - dt.timedelta(days=1)
                                        if progression_day else until))
            if radiological and "tumour_assessment" in crfs:
                # The scan that shows the progression (RECIST 1.1: a new lesion is PD), outside
                # the 3-monthly visits, once the baseline and earlier scans are in.
                save_crf(p, "tumour_assessment", crf_answers(
                    crfs["tumour_assessment"], on=progression_day, method="ct",
                    new_lesions=True, non_target_status="present",
                    target_lesions=[{"lesion_number": 1, "organ": "Liver", "diameter_mm": "30.0",
                                     "lymph_node": False}]), by=coordinator, complete=True)
        done.append(f"{trial.slug} {site.code}: {per_site} participants with outcomes")
    return done


def _visits_until(p, *, by, until, rng, crfs: dict, assess_until) -> None:
    """Demo only: visits of ``p`` up to ``until`` done on their target date, with the CRFs that
    carry anchors (surgery, first injection), tumour assessments (shrinking up to
    ``assess_until``, stable after),
    adverse events now and then, the Clavien-Dindo assessment and the last-news form of the
    survival follow-up after progression."""
    import datetime as dt


    anchor_crfs = {a["source"]["crf"] for a in p.definition.get("anchors", [])}
    safety = p.definition.get("safety", {})
    ae_crf = safety.get("adverse_events", {}).get("crf")
    morbidity_crf = safety.get("surgical_morbidity", {}).get("crf")
    size = 32.0 + rng.uniform(-8, 8)
    ae_left = 3
    while True:
        visit = (Visit.objects.filter(participant=p, status=VisitStatus.PLANNED, unscheduled=False,
                                      target_date__lte=until)
                 .order_by("target_date", "code", "occurrence").first())
        if visit is None:
            break
        on = visit.target_date
        scheduling.record_visit_done(visit, done_on=on, by=by)
        for code in visit.crfs:
            crf = crfs.get(code)
            if crf is None:
                continue
            answers = None
            if code in anchor_crfs:
                answers = with_kit(p, visit, code, crf_answers(crf, on=on, **as_planned(crf, on)),
                                   by=by)
            elif code == "tumour_assessment":
                # Shrinking or stable up to ``assess_until``, stable after it (the scans that
                # follow a progression show no further progression of their own).
                if on <= assess_until:
                    size = max(5.0, size * rng.uniform(0.85, 1.05))
                answers = crf_answers(crf, on=on, method="ct", new_lesions=False,
                                      non_target_status="present",
                                      target_lesions=[{"lesion_number": 1, "organ": "Liver",
                                                       "diameter_mm": f"{size:.1f}",
                                                       "lymph_node": False}])
            elif code == ae_crf and ae_left and rng.random() < 0.4:
                ae_left -= 1
                grade = rng.choices([1, 2, 3, 4], weights=[50, 30, 15, 5])[0]
                term = rng.choice(AE_TERMS)
                grade = min(grade, max(term_grades(crf, term)))  # only a grade the term has
                answers = crf_answers(crf, on=on, any_event=True, events=[{
                    "term": term,
                    # Not serious: the SAEs of the demo are safety_showcase's, one at each step.
                    "grade": grade, "serious": False, "attribution": "possible",
                    "start_date": (on - dt.timedelta(days=10)).isoformat(), "end_date": None,
                    "ongoing": True}])
            elif code == "last_news":  # survival follow-up after progression (DESIGN.md)
                answers = crf_answers(crf, on=on, vital_status="alive",
                                      information_source="phone_call")
            elif code == morbidity_crf:
                grade = rng.choices([None, "I", "II", "IIIa", "IIIb"], weights=[55, 20, 15, 6, 4])[0]
                answers = crf_answers(crf, on=on, any_complication=grade is not None,
                                      complications=[{"description": "Anastomotic leak" if grade
                                                      in ("IIIa", "IIIb") else "Wound infection",
                                                      "onset_date": (on - dt.timedelta(days=20))
                                                      .isoformat(), "grade": grade}]
                                      if grade else [])
            if answers is not None:
                save_crf(p, code, answers, by=by, complete=True, visit=visit)


def rebaseline_showcase(trial: Trial, *, investigator) -> list[str]:
    """Demo only: where the protocol re-baselines tumour assessments after an anchor (the rectal
    trial's arm A after surgery), the first such participant at the first site whose surgery
    and post-operative scan are past gets the worked case of docs/crfs.md: a pre-operative CT
    with the primary tumour (40 mm) and a liver metastasis (30 mm), a post-operative CT with the
    primary marked surgically removed (the new baseline, 30 mm) and, at the later assessments
    already due, the liver at 20 mm (PR from 30). Every scan of theirs due by today is entered
    here, before the done visits get their routine scans (``tumour_assessments_at_done_visits``)."""
    crf = crf_of(trial.current_version_id, "tumour_assessment")
    rule = (crf or {}).get("rebaseline")
    site = trial.sites.filter(active=True).order_by("code").first()
    if rule is None or site is None:
        return []
    anchor = next(a for a in trial.definition.get("anchors", []) if a["code"] == rule["after_anchor"])
    today = timezone.localdate()
    for record in (CRFRecord.objects.filter(participant__site=site,
                                            crf_code=anchor["source"]["crf"],
                                            participant__allocation__arm__code__in=rule["arms"])
                   .select_related("participant").order_by("participant__study_id")):
        p = record.participant
        visits = sorted((v for v in Visit.objects.filter(participant=p)
                         if "tumour_assessment" in (v.crfs or [])
                         and (v.done_on or v.target_date) <= today),
                        key=lambda v: (v.done_on or v.target_date, v.pk))
        operated = as_date(record.data.get(anchor["source"]["field"]))
        before = [v for v in visits if operated and (v.done_on or v.target_date) < operated]
        after = [v for v in visits if operated and (v.done_on or v.target_date) >= operated]
        if not before or not after or CRFRecord.objects.filter(
                participant=p, crf_code="tumour_assessment").exists():
            continue

        def scan(visit, primary, liver):
            rows = [{"lesion_number": 1, "organ": "Rectum", "lymph_node": False,
                     **({"diameter_mm": primary} if primary else
                        {"diameter_mm": "0", "surgically_removed": True})},
                    {"lesion_number": 2, "organ": "Liver", "diameter_mm": liver,
                     "lymph_node": False}]
            on = visit.done_on or visit.target_date
            return save_crf(p, "tumour_assessment", crf_answers(
                crf, on=on, method="ct", target_lesions=rows, new_lesions=False,
                non_target_status="present"), by=investigator, complete=True, visit=visit)

        for visit in before:
            scan(visit, "40", "30")
        scan(after[0], None, "30")
        for visit in after[1:]:
            scan(visit, None, "20")
        return [f"{p.study_id}: re-baselined after surgery (post-operative CT the new baseline)"]
    return []


def tumour_assessments_at_done_visits(trial: Trial, *, by) -> int:
    """Demo only: every randomised participant's done visits that expect a tumour assessment
    get one (the demo's visit history records the visits, not their forms)."""

    crf = crf_of(trial.current_version_id, "tumour_assessment")
    if crf is None:
        return 0
    entered = set(CRFRecord.objects.filter(participant__trial=trial, crf_code="tumour_assessment")
                  .values_list("visit_id", flat=True))
    count = 0
    for visit in (Visit.objects.filter(participant__trial=trial, status=VisitStatus.DONE)
                  .exclude(pk__in=entered).select_related("participant")
                  .order_by("participant", "done_on")):
        if "tumour_assessment" not in visit.crfs:
            continue
        answers = crf_answers(crf, on=visit.done_on, method="ct", new_lesions=False,
                              non_target_status="present",
                              target_lesions=[{"lesion_number": 1, "organ": "Liver",
                                               "diameter_mm": "30.0", "lymph_node": False}])
        save_crf(visit.participant, "tumour_assessment", answers, by=by, complete=True,
                 visit=visit)
        count += 1
    return count
def report_showcase(trial: Trial, *, sponsor, statistician) -> list[str]:
    """An enrolment report already built for the sponsor (and, in a blinded trial, one for the
    statistician, which the sponsor sees listed but may not download), through the real service
    (Celery runs eagerly in the demo). Only when the trial has no report yet."""

    if ReportRequest.objects.filter(trial=trial).exists():
        return []
    readers = [sponsor] + ([statistician] if trial.is_blinded else [])
    done = []
    for reader in readers:
        report = ReportRequest.objects.get(pk=request_report(trial, "enrolment", by=reader).pk)
        done.append(f"{trial.slug}: enrolment report #{report.pk} for {reader.username} "
                    f"({report.status})")
    return done


def safety_showcase(trial: Trial, *, investigator, officer, password: str) -> list[str]:
    """Demo only: SAE reports at every step at the trial's first site, through the real
    services (the CRF save opens each report). One reported on time and assessed by the safety
    officer as a SUSAR (related, unexpected; in REMINET still blinded, for the ``safety`` user
    to unblind), one overdue (the site became aware 30 hours ago and has not signed), one
    signed 40 hours after awareness (listed late), and, given a fourth participant, one more
    on time. Safe to run again: does nothing
    once the trial has an SAE report."""
    from safety import services as safety
    from safety.models import SAEReport

    if SAEReport.objects.filter(trial=trial).exists():
        return []
    site = trial.sites.filter(active=True).order_by("code").first()
    ae_crf = trial.definition.get("safety", {}).get("adverse_events", {}).get("crf")
    if not ae_crf or not safety.products(trial):
        return []
    candidates = (Participant.objects.filter(trial=trial, site=site,
                                             status__in=RANDOMISED_STATUSES)
                  .exclude(crf_records__crf_code=ae_crf, crf_records__visit__isnull=True)
                  .order_by("study_id"))[:4]
    cases = [("SUSAR, reported on time", "Pancreatitis", 0, True),  # NCI-CTCAE v4.03 terms
             ("overdue", "Lung infection", 30, False), ("late", "Thromboembolic event", 40, True),
             ("on time", "Febrile neutropenia", 0, True)]
    now = timezone.now()
    done = []
    for participant, (case, term, hours_ago, sign) in zip(candidates, cases):
        aware = now - dt.timedelta(hours=hours_ago)
        onset = timezone.localtime(aware).date() - dt.timedelta(days=1)
        record = save_crf(participant, ae_crf, {"any_event": True, "events": [{
            "term": term, "grade": 3, "serious": True, "attribution": "possible",
            "start_date": onset.isoformat(), "end_date": None, "ongoing": True}]},
            by=investigator, complete=True)
        report = SAEReport.objects.get(source_record=record)
        related = "related" if case.startswith("SUSAR") else "not_related"
        safety.save_draft(report, {
            "criteria": ["hospitalisation"], "onset_date": onset, "aware_at": aware,
            "outcome": "recovering", "death_date": None,
            "causality": {p["code"]: related for p in safety.products(trial)},
            "narrative": f"{term} on {onset:%Y-%m-%d}, admitted to hospital; treated."},
            by=investigator)
        report.refresh_from_db()
        if sign:  # now: for the "late" case, 40 hours after the site became aware
            safety.sign_version(report.versions.get(), by=investigator, password=password)
        if case.startswith("SUSAR"):
            report.refresh_from_db()
            safety.assess(report, by=officer,
                          causality={p["code"]: "related" for p in safety.products(trial)},
                          expectedness={p["code"]: "unexpected" for p in safety.products(trial)})
        done.append(f"{trial.slug}: {report.number} ({case}) for {participant.study_id}")
    return done


# --------------------------------------------------------------------------- consent, withdrawal


def demo_amendment(definition: dict) -> dict:
    """Demo and tests only: an amendment of ``definition`` that the source documents do not
    contain, to show consent over the years a trial runs. Protocol version "<version>-A1"
    introduces consent form 2.0 (its optional items, plus contact for a quality-of-life
    questionnaire), asks participants who signed 1.0 to re-consent, and schedules the
    QLQ-C30 every 3 months when the protocol ships the form unscheduled (REMINET).

    ``definition`` as stored (``ProtocolVersion.definition``): its texts in every language
    and its notes, which an amendment keeps."""
    import copy

    languages = languages_of(definition)

    def text(en: str, fr: str):
        """One text per language of the protocol (English where no French is given)."""
        if len(languages) == 1:
            return fr if languages == ["fr"] else en
        return {language: fr if language == "fr" else en for language in languages}

    amended = copy.deepcopy(definition)
    label = f"{definition['version']}-A1"
    amended["version"] = label
    amended["amendment_note"] = ("Demo amendment, not in the source documents: consent form 2.0, "
                                 "re-consent of participants who signed 1.0.")
    versions = amended.setdefault("consent", {"versions": []})["versions"]
    previous = [v["code"] for v in versions]
    versions.append({
        "code": "2.0", "date": "2025-06-01",
        "label": text("Patient information and consent form, version 2.0 (demo amendment)",
                      "Note d'information et formulaire de consentement, version 2.0 "
                      "(amendement de démonstration)"),
        "source": "demo: not in the source documents",
        "optional_items": [*(versions[-1].get("optional_items", []) if versions else []),
                           {"code": "qol_contact",
                            "label": text("Contact for a quality-of-life questionnaire",
                                          "Contact pour un questionnaire de qualité de vie")}]})
    amended["amendments"] = [*amended.get("amendments", []), {
        "protocol_version": label, "date": "2025-06-01", "consent_version": "2.0",
        "reconsent": previous, "note": "Demo: quality of life every 3 months; re-consent "
                                       "of participants who signed an earlier form."}]
    scheduled = {c for v in amended["visits"] for c in v["crfs"]}
    if "qlq_c30" in {c["code"] for c in amended["crfs"]} and "qlq_c30" not in scheduled:
        amended["visits"].append({
            "code": "quality_of_life",
            "label": text("Quality of life every 3 months", "Qualité de vie tous les 3 mois"),
            "anchor": "randomisation", "offset": {"months": 3},
            "window": {"start": -14, "end": 14},
            "repeat": {"every": {"months": 3},
                       "until_event": [e["code"] for e in amended.get("events", [])
                                       if e.get("ends_all_visits")] or ["death"]},
            "crfs": ["qlq_c30"], "source": "demo amendment, not in the source documents"})
    return amended


def consent_showcase(trial: Trial, *, coordinator) -> list[str]:
    """Demo only: at the trial's first site, a withdrawal at each level (the three randomised
    participants still followed registered last, from today: the first ones show the visit
    states); then, for REMINET, the demo amendment
    (``demo_amendment``) loaded and one participant re-consented to its form, so the others
    wait on the re-consent worklist. Safe to run again: does nothing once a withdrawal exists."""
    from patients.models import Withdrawal, WithdrawalLevel
    from trials.protocol import validate_definition
    from trials.services import store_protocol

    if Withdrawal.objects.filter(participant__trial=trial).exists():
        return []
    done = []
    today = timezone.localdate()
    site = trial.sites.filter(active=True).order_by("code").first()
    followed = list(Participant.objects.filter(
        site=site, status__in=["randomised", "on_treatment", "follow_up"]).order_by("-study_id"))
    for participant, level in zip(followed, WithdrawalLevel.values):
        scheduling.record_withdrawal_and_replan(
            participant, by=coordinator, level=level, withdrawn_on=today,
            reason={"treatment": "Grade 3 toxicity: stops study treatment, stays in follow-up",
                    "visits": "Moved away: no more visits, agrees to vital-status follow-up",
                    "consent": "Withdraws consent to further data collection"}[level])
        done.append(f"{trial.slug}: {participant.study_id} withdrawn ({level})")
    if trial.slug == "reminet":
        amended = demo_amendment(trial.current_version.definition)
        problems = validate_definition(amended)
        if problems:
            raise ValidationError("; ".join(map(str, problems)))
        store_protocol(amended, source_file="demo amendment")
        done.append(f"{trial.slug}: demo amendment {amended['version']} loaded")
        pending = [p for p in Participant.objects.filter(site=site, consent_version="1.0")
                   .exclude(withdrawals__level="consent").order_by("study_id")
                   if p.status not in ("dead", "completed")]
        if pending:
            p = pending[0]
            scheduling.record_consent_and_replan(
                p, by=coordinator, consent_date=today, version="2.0",
                answers={"biological_samples": True, "data_reuse": True,
                         "registry_vital_status": True, "qol_contact": True})
            done.append(f"{trial.slug}: {p.study_id} re-consented to form 2.0; "
                        f"{len(pending) - 1} pending")
    return done


# --------------------------------------------------------------------------- product supply

# The demo's kit list (REMINET): a generated, sealed batch, and what each site is first sent.
DEMO_KITS = 1200
DEMO_KIT_LOT = 20
DEMO_KITS_PER_ARM = 150
DEMO_KIT_EXPIRY_DAYS = 900


def with_kit(participant, visit, crf_code: str, answers: dict, *, by) -> dict:
    """Demo only: where the protocol dispenses kits at ``visit`` through ``crf_code`` (REMINET's
    injection form), the kit assigned at the visit (assigned now through
    ``randomisation.services.assign_kit`` if the visit has none) is the kit the form records,
    as the save requires. Other forms and trials: ``answers`` unchanged."""
    settings = supply.settings_of(participant.trial)
    if settings is None:
        return answers
    dispensing = settings["dispensing"]
    if crf_code != dispensing["crf"] or visit is None or visit.code not in dispensing["visits"]:
        return answers
    given_field = dispensing.get("given_field")
    if given_field and answers.get(given_field) is False:
        return answers
    assignment = randomisation.assign_kit(visit, by=by)
    return dict(answers, **{dispensing["field"]: assignment.kit.number})


def supply_stock(trial: Trial, *, statistician, manager, receivers: dict[int, object]
                 ) -> list[str]:
    """Demo only, before the first randomisation of a trial that dispenses kits (REMINET): a
    kit list generated and sealed by the statistician, ``DEMO_KITS_PER_ARM`` kits of each arm
    shipped by the supply manager to every site and received there by ``receivers`` (site id ->
    user); the first site's shipment arrives with one kit damaged. Safe to run again: does
    nothing once the trial has a sealed kit list."""
    from randomisation import kitlist
    from supply.models import KitList, KitListStatus

    if supply.settings_of(trial) is None or KitList.objects.filter(
            trial=trial, status=KitListStatus.SEALED).exists():
        return []
    kit_list = kitlist.generate(
        trial, by=statistician, kits=DEMO_KITS, lot_size=DEMO_KIT_LOT, seed=f"demo-kits-{trial.slug}",
        expires_on=timezone.localdate() + dt.timedelta(days=DEMO_KIT_EXPIRY_DAYS))
    kit_list = kitlist.seal(kit_list, by=statistician)
    done = [f"{trial.slug}: kit list #{kit_list.number} of {DEMO_KITS} kits sealed"]
    arms = list(trial.arms.order_by("position").values_list("code", flat=True))
    for site_index, site in enumerate(trial.sites.filter(active=True).order_by("code")):
        shipment = supply.dispatch_shipment(
            trial, site=site, by=manager, quantities={arm: DEMO_KITS_PER_ARM for arm in arms},
            note="Initial stock (demo)")
        outcomes = {}
        if site_index == 0:  # one pack crushed in transit
            outcomes[shipment.items.order_by("kit__number").first().kit.number] = "damaged"
        supply.receive_shipment(shipment, by=receivers[site.pk], outcomes=outcomes)
        done.append(f"{trial.slug} {site.code}: shipment {shipment.number} received"
                    + (" (one kit damaged)" if outcomes else ""))
    return done


def supply_showcase(trial: Trial, *, coordinator, investigator) -> list[str]:
    """Demo only, at the trial's first site once its participants are in (REMINET):

    - a replacement kit: the next injection visit of the first participant on treatment gets its
      kit, which the investigator finds damaged and replaces, with the reason;
    - a temperature excursion reported by the coordinator: the fridge's kits quarantined (mixed
      arms), leaving of each arm exactly what the protocol's resupply level asks for
      (``supply.resupply.levels``), so the site is short and its resupply request is raised at
      once, its e-mail sent to the supply manager and the depot (the console, in the demo).

    The excursion is left for the supply manager to decide. Safe to run again: does nothing
    once the trial has an excursion."""
    from supply.models import Excursion, KitRelease

    if supply.settings_of(trial) is None or Excursion.objects.filter(trial=trial).exists():
        return []
    done = []
    site = trial.sites.filter(active=True).order_by("code").first()
    dispensing = supply.settings_of(trial)["dispensing"]["visits"]
    today = timezone.localdate()
    if not KitRelease.objects.filter(assignment__participant__trial=trial,
                                     kind__in=["damaged", "lost"]).exists():
        visit = (Visit.objects.filter(participant__site=site, participant__status__in=["randomised", "on_treatment"],
                                      code__in=dispensing, status=VisitStatus.PLANNED,
                                      target_date__gte=today)
                 .select_related("participant").order_by("target_date", "pk").first())
        if visit is not None:
            first = randomisation.assign_kit(visit, by=investigator)
            second = randomisation.replace_kit(
                first, kind="damaged", by=investigator,
                reason="The pack's seal was broken when it was taken from the fridge.")
            done.append(f"{visit.participant.study_id}: kit {first.kit.number} damaged, "
                        f"replaced by {second.kit.number}")
    keep = {level.arm: level.trigger for level in supply_levels(site)}
    exposed = []
    for arm, n in keep.items():
        kits = list(Kit.objects.filter(site=site, arm__code=arm, status=KitStatus.AVAILABLE)
                    .order_by("expires_on", "number").values_list("number", flat=True))
        exposed += kits[n:]  # the ones kept are the next to be given (earliest expiry)
    if exposed:
        supply.report_excursion(
            site, numbers=sorted(exposed), by=coordinator,
            description="Pharmacy fridge at 11 °C for about 6 hours overnight (alarm at 02:10, "
                        "door found ajar); the kits of the lower shelves exposed.")
        done.append(f"{trial.slug} {site.code}: temperature excursion, {len(exposed)} kits "
                    f"quarantined; resupply requested")
    return done
