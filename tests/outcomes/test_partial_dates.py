"""A partial date counts for an endpoint only by the imputation rule the protocol states, and
the outcomes' methods then say so; without a rule it is unknown, as if not given."""
from __future__ import annotations

import copy
import datetime as dt

from django.utils import timezone
from django.utils.translation import get_language

from outcomes.analysis import outcomes_for
from outcomes.endpoints import derive_endpoints
from trials import models as trial_models

from .test_endpoints import by_id, randomise, record  # noqa: F401  (fixture)


def with_partial_death_date(trial, impute: str | None) -> None:
    """The trial's protocol as if its death date were allowed to be partial (``impute``)."""
    definition = copy.deepcopy(trial.definition)
    death = next(c for c in definition["crfs"] if c["code"] == "death")
    field = next(f for f in death["fields"] if f["code"] == "death_date")
    field["partial"] = {"precision": "month", **({"impute": impute} if impute else {})}
    for language in (get_language(), None):  # as read by pages, and for rows
        trial_models._DEFINITIONS[(trial.current_version_id, language)] = definition


def test_a_death_known_to_the_month_is_dated_by_the_protocols_rule_only(
        rectal, randomise, coordinator, statistician):
    p = randomise(300)
    randomised_on = timezone.localdate(p.allocation.randomised_at)
    month = (randomised_on + dt.timedelta(days=120)).replace(day=1)
    record(p, "death", coordinator, on_day=120, death_date=f"{month:%Y-%m}")

    with_partial_death_date(rectal, None)
    os_ = by_id(derive_endpoints(rectal)["os"])[p.study_id]
    assert not os_.event and os_.imputed is None  # unknown without a rule: not a death date
    view = outcomes_for(statistician, rectal)
    assert not any("imputed" in m for s in view.sections for m in s.methods)

    with_partial_death_date(rectal, "middle")
    os_ = by_id(derive_endpoints(rectal)["os"])[p.study_id]
    assert os_.event and os_.date == month.replace(day=15) and os_.imputed == "middle"
    view = outcomes_for(statistician, rectal)
    section = next(s for s in view.sections if s.code == "os")
    assert ("Dates known to the month were imputed to the 15th, and dates known to the year "
            "to 1 July, as the protocol states. (1 participant's date.)") in section.methods
