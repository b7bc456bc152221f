"""The one place that decides who may do what.

Every page, API endpoint, export, PDF and e-mail asks this module; none checks a role itself.
A permission is granted by a role (``ROLE_PERMISSIONS``) within a membership's scope: a trial,
and one site of it or all of its sites. Site-scoped users see only their site's participants;
an object of another site is reported as not found (404), never as forbidden, so its existence
does not leak.

Superusers (the Django admin role) may do everything; every admin access is audited by the
admin itself.
"""
from __future__ import annotations

from enum import Enum

from django.db.models import Prefetch, Q, QuerySet

from .models import Membership, Role, Site, Trial


class Perm(str, Enum):
    VIEW_TRIAL = "view_trial"
    VIEW_PARTICIPANTS = "view_participants"
    SCREEN = "screen"                        # register a participant, record consent, eligibility
    RANDOMISE = "randomise"
    SCHEDULE_VISITS = "schedule_visits"
    ENTER_CRF = "enter_crf"
    SIGN_CRF = "sign_crf"
    CONFIRM_ELIGIBILITY = "confirm_eligibility"  # e-signature before randomisation
    ANSWER_QUERY = "answer_query"
    RAISE_QUERY = "raise_query"              # also closes queries
    LOCK_CRF = "lock_crf"
    LOCK_DATA = "lock_data"                  # freeze and lock casebooks, sites, the trial
    VIEW_REPORTS = "view_reports"
    EXPORT_DATA = "export_data"
    EMERGENCY_UNBLIND = "emergency_unblind"
    MANAGE_ALLOCATION = "manage_allocation"  # generate, import, seal allocation lists
    VIEW_ARMS = "view_arms"                  # in a blinded trial; open trials show arms to all
    VIEW_AUDIT = "view_audit"
    VISIT_REMINDERS = "visit_reminders"      # receives the daily digest of the site's visits
    VIEW_SCREENING_LOG = "view_screening_log"  # people assessed but not registered (no identifiers)
    RECORD_RANDOMISED_IN_ERROR = "record_randomised_in_error"
    VIEW_SAFETY = "view_safety"              # SAE reports (blinded, as every page)
    ASSESS_SAFETY = "assess_safety"          # the sponsor's assessment; the safety desk's alerts
    SAFETY_UNBLIND = "safety_unblind"        # one SUSAR's arm, for pharmacovigilance only
    VERIFY_SOURCE = "verify_source"          # source data verification (SDV) of CRF answers
    VIEW_SUPPLY = "view_supply"              # stock, shipments, accountability (kit numbers)
    DISPENSE = "dispense"                    # assign a participant's kit at a visit, replace it
    RECEIVE_SUPPLY = "receive_supply"        # confirm receipts, report excursions, returns
    MANAGE_SUPPLY = "manage_supply"          # ship, resupply, quarantine decisions; arms of kits
    VIEW_CLOSED_REPORTS = "view_closed_reports"  # comparisons between arms before the lock
    # Record afterwards an allocation a site made from the sealed envelopes while the system
    # was down (the unblinded statistician: the slot's arm is theirs to see).
    RECORD_EMERGENCY_ALLOCATION = "record_emergency_allocation"
    GO_LIVE = "go_live"                      # end the trial's test mode (irreversible)

    def __str__(self) -> str:
        return self.value


ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.INVESTIGATOR: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_PARTICIPANTS, Perm.ENTER_CRF, Perm.SIGN_CRF,
        Perm.CONFIRM_ELIGIBILITY, Perm.ANSWER_QUERY, Perm.EMERGENCY_UNBLIND,
        Perm.VISIT_REMINDERS, Perm.VIEW_SCREENING_LOG, Perm.VIEW_SAFETY, Perm.VIEW_SUPPLY,
        Perm.DISPENSE,
    }),
    # The coordinator keeps the screening log (``Perm.SCREEN``) and, like the data manager,
    # may record that a participant of their site was randomised in error.
    Role.COORDINATOR: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_PARTICIPANTS, Perm.SCREEN, Perm.RANDOMISE,
        Perm.SCHEDULE_VISITS, Perm.ENTER_CRF, Perm.ANSWER_QUERY, Perm.VISIT_REMINDERS,
        Perm.VIEW_SCREENING_LOG, Perm.RECORD_RANDOMISED_IN_ERROR, Perm.VIEW_SAFETY,
        Perm.VIEW_SUPPLY, Perm.DISPENSE, Perm.RECEIVE_SUPPLY,
    }),
    Role.DATA_MANAGER: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_PARTICIPANTS, Perm.RAISE_QUERY, Perm.LOCK_CRF,
        Perm.LOCK_DATA, Perm.VIEW_REPORTS, Perm.EXPORT_DATA, Perm.VIEW_AUDIT, Perm.VIEW_SCREENING_LOG,
        Perm.RECORD_RANDOMISED_IN_ERROR, Perm.VIEW_SAFETY, Perm.VIEW_SUPPLY, Perm.GO_LIVE,
    }),
    # The sponsor's study staff (monitors have their own role) follow the sites' kit
    # accountability.
    Role.SPONSOR: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_PARTICIPANTS, Perm.VIEW_REPORTS, Perm.EXPORT_DATA,
        Perm.VIEW_SCREENING_LOG, Perm.VIEW_SAFETY, Perm.VIEW_SUPPLY,
    }),
    # The monitor (clinical research associate) of the sites assigned to them: verifies CRF
    # answers against the source, raises queries, reconciles the kits. Blinded.
    Role.MONITOR: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_PARTICIPANTS, Perm.RAISE_QUERY, Perm.VERIFY_SOURCE,
        Perm.VIEW_REPORTS, Perm.VIEW_SCREENING_LOG, Perm.VIEW_SAFETY, Perm.VIEW_SUPPLY,
    }),
    Role.STATISTICIAN: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_PARTICIPANTS, Perm.VIEW_REPORTS, Perm.EXPORT_DATA,
        Perm.MANAGE_ALLOCATION, Perm.VIEW_ARMS, Perm.VIEW_AUDIT, Perm.VIEW_SCREENING_LOG,
        Perm.VIEW_SUPPLY, Perm.VIEW_CLOSED_REPORTS, Perm.RECORD_EMERGENCY_ALLOCATION,
        Perm.GO_LIVE,
    }),
    # Unblinded to kits (which arm each kit number holds), not to participants: no clinical
    # data, no participant list; the accountability log names participants by study ID only.
    Role.SUPPLY_MANAGER: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_SUPPLY, Perm.MANAGE_SUPPLY,
    }),
    # The sponsor's pharmacovigilance (the safety desk): blinded like the study team, except
    # for the one participant of a SUSAR it unblinds (``can_see_arm``). Not a study-team role:
    # it enters no data and sees no enrolment report.
    Role.SAFETY_OFFICER: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_SAFETY, Perm.ASSESS_SAFETY, Perm.SAFETY_UNBLIND,
    }),
    # The data monitoring committee: reads the closed reports (outcomes and safety compared
    # between arms, interim analyses against their boundaries) while the trial runs; enters
    # nothing and sees no participant list. Not unblinded to individuals (``VIEW_ARMS``).
    Role.DMC: frozenset({
        Perm.VIEW_TRIAL, Perm.VIEW_REPORTS, Perm.VIEW_CLOSED_REPORTS,
    }),
}


def _memberships(user, trial: Trial) -> list[Membership]:
    """The user's active memberships in ``trial``, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    cache = user.__dict__.setdefault("_ctms_memberships", {})
    if trial.pk not in cache:
        # ``order_by()``: the model's ordering would join the trial and user tables for nothing.
        cache[trial.pk] = list(Membership.objects.filter(user=user, trial=trial, active=True)
                               .order_by())
    return cache[trial.pk]


def visible_trial(user, slug: str) -> Trial | None:
    """The trial ``slug`` when ``user`` has a part in it (or is a superuser), else None.

    The trial comes with the user's active memberships in it (prefetched: two queries); they
    are kept for this request's later checks (``_memberships``), which then read nothing.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    # ``order_by()``: the model's ordering would join the trial and user tables for nothing.
    mine = Membership.objects.filter(user=user, active=True).order_by()
    trial = (Trial.objects.filter(slug=slug)
             .prefetch_related(Prefetch("memberships", queryset=mine, to_attr="user_memberships"))
             .first())
    if trial is None or not (trial.user_memberships or user.is_superuser):
        return None
    user.__dict__.setdefault("_ctms_memberships", {})[trial.pk] = trial.user_memberships
    return trial


def roles_with(perm: Perm) -> list[str]:
    """The roles that grant ``perm``: for set-wise queries that join memberships themselves
    (the daily reminder job finds each site's recipients in one SQL statement)."""
    return sorted(role for role, perms in ROLE_PERMISSIONS.items() if perm in perms)


def roles_in(user, trial: Trial) -> set[str]:
    return {m.role for m in _memberships(user, trial)}


def has_perm(user, perm: Perm, trial: Trial, site: Site | None = None) -> bool:
    """May ``user`` do ``perm`` in ``trial`` (at ``site``, when the action concerns one site)?"""
    if getattr(user, "is_superuser", False) and user.is_active:
        return True
    if perm == Perm.VIEW_ARMS and not trial.is_blinded:
        return bool(_memberships(user, trial))
    for m in _memberships(user, trial):
        if perm not in ROLE_PERMISSIONS[m.role]:
            continue
        if site is None or m.site_id is None or m.site_id == site.pk:
            return True
    return False


def is_blinded_for(user, trial: Trial) -> bool:
    """True when the arm must not be shown to ``user`` in ``trial``."""
    return not has_perm(user, Perm.VIEW_ARMS, trial)


def can_see_arm(user, allocation) -> bool:
    """May ``user`` see the arm of this one allocation? Unblinded roles may; in a blinded trial an
    investigator may after an emergency unblinding of that participant by themselves, a safety
    officer after unblinding that participant's SUSAR (pharmacovigilance) by themselves."""
    if not is_blinded_for(user, allocation.trial):
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    return (allocation.unblindings.filter(user=user).exists()
            or allocation.safety_unblindings.filter(user=user).exists())


def can_see_comparisons(user, trial: Trial) -> bool:
    """May ``user`` see figures that compare the arms (per-arm survival curves, counts and
    rates, p-values, hazard ratios, per-arm safety tables, interim analyses)?

    Continuous looks at the comparison are what a data monitoring committee protects a trial
    from: until the trial is locked *and* unblinded (an open-label trial has no blind, so
    locked), they are closed reports, for the roles holding ``Perm.VIEW_CLOSED_REPORTS`` (the
    DMC and the unblinded statistician) only; everyone else reads pooled figures. In an
    open-label trial an individual's arm stays visible (``is_blinded_for``): only comparisons
    are closed. The lock is read from the trial's ``locked_at`` where the trial has one.
    """
    if has_perm(user, Perm.VIEW_CLOSED_REPORTS, trial):
        return True
    locked = getattr(trial, "locked_at", None) is not None
    return locked and not trial.is_blinded and bool(_memberships(user, trial))


def can_see_kit_arms(user, trial: Trial) -> bool:
    """May ``user`` see which arm each kit holds (stock per arm, resupply quantities)? The
    unblinded roles: those who see arms, and the supply manager."""
    return not is_blinded_for(user, trial) or has_perm(user, Perm.MANAGE_SUPPLY, trial)


def trials_for(user) -> QuerySet[Trial]:
    if getattr(user, "is_superuser", False):
        return Trial.objects.all()
    return Trial.objects.filter(memberships__user=user, memberships__active=True).distinct()


def sites_for(user, trial: Trial, perm: Perm = Perm.VIEW_PARTICIPANTS) -> QuerySet[Site]:
    """The sites of ``trial`` at which ``user`` holds ``perm``."""
    sites = Site.objects.filter(trial=trial)
    if getattr(user, "is_superuser", False):
        return sites
    scopes = [m for m in _memberships(user, trial) if perm in ROLE_PERMISSIONS[m.role]]
    if any(m.site_id is None for m in scopes):
        return sites
    return sites.filter(pk__in=[m.site_id for m in scopes])


def holds_for_every_site(user, trial: Trial, perm: Perm) -> bool:
    """Does ``user`` hold ``perm`` in ``trial`` for the whole trial (a membership without a
    site, or a superuser), rather than for some sites only? What is not any one site's (the
    audit log's trial-wide entries) is shown to such users only."""
    if getattr(user, "is_superuser", False) and user.is_active:
        return True
    return any(m.site_id is None and perm in ROLE_PERMISSIONS[m.role]
               for m in _memberships(user, trial))


def site_filter(user, trial: Trial, perm: Perm = Perm.VIEW_PARTICIPANTS, *,
                field: str = "site") -> Q:
    """A ``Q`` restricting rows with a ``field`` site FK to the sites where the user has ``perm``.

    Returns a filter matching nothing when the user has no such scope, so a selector can never
    forget the restriction by accident.
    """
    if getattr(user, "is_superuser", False):
        return Q(**{f"{field}__trial": trial})
    scopes = [m for m in _memberships(user, trial) if perm in ROLE_PERMISSIONS[m.role]]
    if not scopes:
        return Q(pk__in=[])
    if any(m.site_id is None for m in scopes):
        return Q(**{f"{field}__trial": trial})
    return Q(**{f"{field}__in": [m.site_id for m in scopes]})


# Permissions whose misuse would break the trial (a forged signature, an arm revealed, a list
# replaced): a user holding any of them, in any trial, must log in with a second factor.
TWO_FACTOR_PERMS = frozenset({Perm.SIGN_CRF, Perm.EMERGENCY_UNBLIND, Perm.MANAGE_ALLOCATION,
                              Perm.SAFETY_UNBLIND, Perm.MANAGE_SUPPLY, Perm.VIEW_CLOSED_REPORTS,
                              Perm.RECORD_EMERGENCY_ALLOCATION})


def requires_two_factor(user) -> bool:
    """Must ``user`` log in with two factors? Superusers, and holders of an active membership
    whose role grants a permission in ``TWO_FACTOR_PERMS`` (read from ``ROLE_PERMISSIONS``)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    roles = [role for role, perms in ROLE_PERMISSIONS.items() if perms & TWO_FACTOR_PERMS]
    return Membership.objects.filter(user=user, active=True, role__in=roles).exists()
