"""Demo data: what ``manage.py demo_setup`` creates, and the tests reuse.

Only for the embedded demo and the tests; nothing in the product calls it.
"""
from __future__ import annotations

from django.utils import timezone

from .models import Trial


def eligibility_answers(trial: Trial, **overrides) -> dict:
    """Answers to the trial's eligibility CRF that make a participant eligible: every inclusion
    criterion yes, every exclusion no, the first choice of every other choice field, a valid
    value for the rest. ``overrides`` set chosen fields (e.g. a stratification factor)."""
    from decimal import Decimal

    crf = trial.current_version.crf("eligibility")
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


def populate(trial: Trial, *, coordinator, statistician, per_site: dict[str, int]) -> list[str]:
    """Give ``trial`` a sealed allocation list and participants at every stage at each site:
    ``per_site["randomised"]`` randomised, ``["ready"]`` consented and eligible (waiting for a
    coordinator to randomise), ``["screened"]`` only screened. Safe to run again: it only tops up.
    """
    import datetime as dt

    from outcomes.services import save_crf
    from patients.models import Participant
    from patients.services import record_consent, register_participant
    from randomization import services as randomization

    done = []
    if randomization.active_list(trial) is None:
        alist = randomization.generate_list(trial, by=statistician, seed=f"demo-{trial.slug}")
        randomization.seal_and_activate(alist, by=statistician)
        done.append(f"{trial.slug}: allocation list #{alist.number} sealed")
    factors = trial.definition.get("stratification_factors", [])
    today = timezone.localdate()
    for site_index, site in enumerate(trial.sites.filter(active=True).order_by("code")):
        existing = Participant.objects.filter(site=site).count()
        wanted = sum(per_site.values())
        for i in range(existing, wanted):
            p = register_participant(trial, site, by=coordinator,
                                     screened_on=today - dt.timedelta(days=40 - 3 * i))
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
            if i < per_site["randomised"]:
                randomization.randomize(p, by=coordinator)
        done.append(f"{trial.slug} {site.code}: {wanted} participants")
    return done
