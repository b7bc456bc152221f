"""The trial's outcomes page: survival analysis and safety tables."""
from django.shortcuts import render
from django.views.decorators.http import require_GET

from trials.policy import Perm
from trials.selectors import get_trial_for

from . import analysis, plots


@require_GET
def trial_outcomes(request, slug: str):
    """Survival analysis and safety tables of a trial, for readers of reports; pooled for a
    reader blinded to the arm (``outcomes.analysis``)."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_REPORTS)
    view = analysis.outcomes_for(request.user, trial)
    for section in view.sections:
        section.svg = plots.km_svg(section.analysis)
    return render(request, "outcomes/trial_outcomes.html", {"trial": trial, "view": view})
