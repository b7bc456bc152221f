"""The home page (the user's trials), a trial's overview page, and the health check."""
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from supply.services import settings_of
from trials import locks, policy
from trials.protocol import protocol_warnings
from trials.selectors import get_trial_for

from . import selectors


def home(request):
    return render(request, "trials/home.html", {"cards": selectors.trial_cards(request.user)})


def trial_detail(request, slug: str):
    trial = get_trial_for(request.user, slug)
    overview = selectors.trial_overview(request.user, trial)
    can_manage_allocation = policy.has_perm(request.user, policy.Perm.MANAGE_ALLOCATION, trial)
    can_view_reports = policy.has_perm(request.user, policy.Perm.VIEW_REPORTS, trial)
    return render(request, "trials/trial_detail.html", {
        "trial": trial, "overview": overview,
        "version": trial.versions.only("label", "number").get(pk=trial.current_version_id),
        "can_manage_allocation": can_manage_allocation,
        "can_go_live": policy.has_perm(request.user, policy.Perm.GO_LIVE, trial),
        "dispenses_kits": settings_of(trial) is not None,
        "can_view_reports": can_view_reports,
        "can_export": policy.has_perm(request.user, policy.Perm.EXPORT_DATA, trial),
        "can_view_participants": policy.has_perm(request.user, policy.Perm.VIEW_PARTICIPANTS,
                                                 trial),
        "can_view_safety": policy.has_perm(request.user, policy.Perm.VIEW_SAFETY, trial),
        # The supply pages only where the protocol declares kits.
        "can_view_supply": (settings_of(trial) is not None
                            and policy.has_perm(request.user, policy.Perm.VIEW_SUPPLY, trial)),
        "can_view_audit": policy.has_perm(request.user, policy.Perm.VIEW_AUDIT, trial),
        "can_lock_data": policy.has_perm(request.user, policy.Perm.LOCK_DATA, trial),
        "can_lock_trial": policy.holds_for_every_site(request.user, trial, policy.Perm.LOCK_DATA),
        "data_state": locks.describe(trial, _("The trial")),
        "can_view_participants": policy.has_perm(request.user, policy.Perm.VIEW_PARTICIPANTS,
                                                 trial),
        # What loading the protocol warned about (a horizon shorter than a published figure):
        # shown to those who read the analyses or run the trial, as long as it stands.
        "protocol_warnings": (protocol_warnings(trial.definition)
                              if can_view_reports or can_manage_allocation else []),
    })


@login_not_required
def health(request):
    """For load balancers and compose health checks: 200 when the database answers, else 503."""
    try:
        # Raw SQL: a probe of the server, not of any table; the ORM has no query without a model.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"database": "unreachable"}, status=503)
    return JsonResponse({"database": "ok"})
