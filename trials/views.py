from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import render

from . import selectors


def home(request):
    return render(request, "trials/home.html", {"cards": selectors.trial_cards(request.user)})


def trial_detail(request, slug: str):
    trial = selectors.get_trial_for(request.user, slug)
    overview = selectors.trial_overview(request.user, trial)
    return render(request, "trials/trial_detail.html", {"trial": trial, "overview": overview})


@login_not_required
def health(request):
    """For load balancers and compose health checks: 200 when the database answers, else 503."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"database": "unreachable"}, status=503)
    return JsonResponse({"database": "ok"})
