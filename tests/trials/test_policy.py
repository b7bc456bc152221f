"""The policy module's role matrix, written out here independently of the code."""
from __future__ import annotations

import datetime as dt

import pytest

from trials import policy
from trials.policy import Perm

P = Perm
EXPECTED = {
    "investigator": {P.VIEW_TRIAL, P.VIEW_PARTICIPANTS, P.ENTER_CRF, P.SIGN_CRF,
                     P.CONFIRM_ELIGIBILITY, P.ANSWER_QUERY, P.EMERGENCY_UNBLIND,
                     P.VISIT_REMINDERS, P.VIEW_SCREENING_LOG, P.VIEW_SAFETY, P.VIEW_SUPPLY,
                     P.DISPENSE},
    "coordinator": {P.VIEW_TRIAL, P.VIEW_PARTICIPANTS, P.SCREEN, P.RANDOMISE, P.SCHEDULE_VISITS,
                    P.ENTER_CRF, P.ANSWER_QUERY, P.VISIT_REMINDERS, P.VIEW_SCREENING_LOG,
                    P.RECORD_RANDOMISED_IN_ERROR, P.VIEW_SAFETY, P.VIEW_SUPPLY, P.DISPENSE,
                    P.RECEIVE_SUPPLY},
    "data_manager": {P.VIEW_TRIAL, P.VIEW_PARTICIPANTS, P.RAISE_QUERY, P.LOCK_CRF, P.LOCK_DATA,
                     P.VIEW_REPORTS, P.EXPORT_DATA, P.VIEW_AUDIT, P.VIEW_SCREENING_LOG,
                     P.RECORD_RANDOMISED_IN_ERROR, P.VIEW_SAFETY, P.VIEW_SUPPLY, P.GO_LIVE},
    "sponsor": {P.VIEW_TRIAL, P.VIEW_PARTICIPANTS, P.VIEW_REPORTS, P.EXPORT_DATA,
                P.VIEW_SCREENING_LOG, P.VIEW_SAFETY, P.VIEW_SUPPLY},
    "statistician": {P.VIEW_TRIAL, P.VIEW_PARTICIPANTS, P.VIEW_REPORTS, P.EXPORT_DATA,
                     P.MANAGE_ALLOCATION, P.VIEW_ARMS, P.VIEW_AUDIT, P.VIEW_SCREENING_LOG,
                     P.VIEW_SUPPLY, P.VIEW_CLOSED_REPORTS, P.RECORD_EMERGENCY_ALLOCATION,
                     P.GO_LIVE},
    # The clinical research associate of their sites: SDV, queries, kit reconciliation.
    "monitor": {P.VIEW_TRIAL, P.VIEW_PARTICIPANTS, P.RAISE_QUERY, P.VERIFY_SOURCE,
                P.VIEW_REPORTS, P.VIEW_SCREENING_LOG, P.VIEW_SAFETY, P.VIEW_SUPPLY},
    # Unblinded to kits only: no participants, no clinical data.
    "supply_manager": {P.VIEW_TRIAL, P.VIEW_SUPPLY, P.MANAGE_SUPPLY},
    # Pharmacovigilance: blinded (VIEW_ARMS absent) but for the SUSARs it unblinds itself.
    "safety_officer": {P.VIEW_TRIAL, P.VIEW_SAFETY, P.ASSESS_SAFETY, P.SAFETY_UNBLIND},
    # The data monitoring committee: closed reports (comparisons between arms), nothing else;
    # not unblinded to individual participants.
    "dmc": {P.VIEW_TRIAL, P.VIEW_REPORTS, P.VIEW_CLOSED_REPORTS},
}


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_role_matrix_in_a_blinded_trial(reminet, make_user, role):
    user = make_user(role, reminet)
    granted = {perm for perm in Perm if policy.has_perm(user, perm, reminet)}
    assert granted == EXPECTED[role]


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_every_member_sees_arms_in_an_open_trial(rectal, make_user, role):
    user = make_user(role, rectal)
    assert policy.has_perm(user, Perm.VIEW_ARMS, rectal)
    assert not policy.is_blinded_for(user, rectal)


@pytest.mark.parametrize("role", ["investigator", "coordinator", "data_manager", "sponsor",
                                  "monitor", "safety_officer", "supply_manager", "dmc"])
def test_blinded_roles_are_blinded_in_reminet(reminet, make_user, role):
    assert policy.is_blinded_for(make_user(role, reminet), reminet)


def test_statistician_is_unblinded_in_reminet(reminet, make_user):
    assert not policy.is_blinded_for(make_user("statistician", reminet), reminet)


def test_a_role_in_one_trial_gives_nothing_in_another(rectal, reminet, make_user):
    user = make_user("statistician", rectal)
    assert not any(policy.has_perm(user, perm, reminet) for perm in Perm)
    assert list(policy.trials_for(user)) == [rectal]


def test_site_scope_limits_permissions_to_that_site(rectal, make_user):
    lyon, other = rectal.sites.order_by("code")[:2]
    user = make_user("coordinator", rectal, lyon)
    assert policy.has_perm(user, Perm.RANDOMISE, rectal, site=lyon)
    assert not policy.has_perm(user, Perm.RANDOMISE, rectal, site=other)
    assert list(policy.sites_for(user, rectal)) == [lyon]


def test_all_sites_membership_covers_every_site(rectal, make_user):
    user = make_user("data_manager", rectal)
    assert set(policy.sites_for(user, rectal)) == set(rectal.sites.all())


def test_holding_a_permission_for_the_whole_trial_needs_an_all_sites_membership(
        rectal, make_user):
    """The audit log's trial-wide entries are for readers of the whole trial (issue 20)."""
    site = rectal.sites.order_by("code").first()
    assert policy.holds_for_every_site(make_user("data_manager", rectal), rectal, Perm.VIEW_AUDIT)
    one_site = make_user("data_manager", rectal, site)
    assert policy.has_perm(one_site, Perm.VIEW_AUDIT, rectal, site)
    assert not policy.holds_for_every_site(one_site, rectal, Perm.VIEW_AUDIT)
    assert not policy.holds_for_every_site(make_user("sponsor", rectal), rectal, Perm.VIEW_AUDIT)
    assert policy.holds_for_every_site(make_user(is_superuser=True), rectal, Perm.VIEW_AUDIT)


def test_inactive_membership_grants_nothing(rectal, make_user):
    user = make_user("coordinator", rectal)
    user.memberships.update(active=False)
    user = type(user).objects.get(pk=user.pk)  # drop the per-request cache
    assert not any(policy.has_perm(user, perm, rectal) for perm in Perm)


def test_roles_add_up(rectal, make_user):
    from trials.models import Membership

    site = rectal.sites.first()
    user = make_user("investigator", rectal, site)
    Membership.objects.create(user=user, trial=rectal, site=site, role="coordinator")
    assert policy.has_perm(user, Perm.SIGN_CRF, rectal, site=site)
    assert policy.has_perm(user, Perm.RANDOMISE, rectal, site=site)


def test_unblinding_a_trial_at_its_end_shows_arms_to_all(reminet, make_user):
    from django.utils import timezone

    user = make_user("sponsor", reminet)
    reminet.unblinded_at = timezone.now()
    reminet.save()
    assert not policy.is_blinded_for(user, reminet)


def test_a_deactivated_account_may_do_nothing(rectal, make_user):
    user = make_user("data_manager", rectal)
    user.is_active = False
    user.save()
    assert not any(policy.has_perm(user, perm, rectal) for perm in Perm)


def test_visible_trial_reads_the_trial_with_the_users_memberships(
        rectal, reminet, make_user, django_assert_num_queries):
    from django.contrib.auth import get_user_model

    site = rectal.sites.order_by("code").first()
    user = make_user("coordinator", rectal, site)
    with django_assert_num_queries(2):  # the trial, then the user's memberships in it
        trial = policy.visible_trial(user, "rectal-resection")
        # What the pages ask next is answered from the memberships read with the trial.
        assert policy.has_perm(user, Perm.RANDOMISE, trial, site=site)
        assert not policy.has_perm(user, Perm.LOCK_CRF, trial)
        assert policy.roles_in(user, trial) == {"coordinator"}
    assert trial == rectal
    # No part in the trial, no such trial, an inactive membership: nothing, as for a stranger.
    assert policy.visible_trial(user, "reminet") is None
    assert policy.visible_trial(user, "no-such-trial") is None
    user.memberships.update(active=False)
    user = get_user_model().objects.get(pk=user.pk)
    assert policy.visible_trial(user, "rectal-resection") is None
    # A superuser sees every trial without a membership, and no other one.
    admin = get_user_model().objects.create_superuser("root", password="x" * 16)
    assert policy.visible_trial(admin, "reminet") == reminet
    assert policy.visible_trial(admin, "no-such-trial") is None


def test_demo_setup_builds_a_trial_at_every_stage(db, settings):
    from django.core.management import call_command

    from patients.models import Participant, Status
    from randomisation.models import Allocation

    settings.DEBUG = True
    call_command("demo_setup", stdout=open("/dev/null", "w"))
    call_command("demo_setup", stdout=open("/dev/null", "w"))  # a second run only tops up
    # Five randomised per site with visit histories, and the follow-up cohort with outcomes.
    from demo.management.commands.demo_setup import OUTCOME_COHORT

    assert Allocation.objects.filter(trial__slug="reminet").count() == 2 * (5 + OUTCOME_COHORT["reminet"])
    # One ready per site (five sites in all), and REMINET's re-screened screen failure
    # (demo.data.screening_showcase), screened again with its consent.
    assert Participant.objects.filter(status=Status.SCREENED, consent_date__isnull=False).count() == 6


def test_the_trial_and_participant_read_together_answer_as_read_apart(
        rectal, reminet, make_user, django_assert_num_queries):
    """Every participant page reads both: the same participant, the same 404s and 403s as
    ``get_trial_for`` then ``get_participant_for``."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    from patients.selectors import get_participant_for
    from tests import factories
    from patients.selectors import get_trial_and_participant_for
    from trials.selectors import get_trial_for

    first, second = rectal.sites.order_by("code")[:2]
    coordinator = make_user("coordinator", rectal, first)
    here = factories.participant(rectal, first, by=coordinator)
    there = factories.participant(rectal, second, by=make_user("coordinator", rectal, second))
    users = [coordinator, make_user("sponsor", rectal), make_user("coordinator", reminet),
             get_user_model().objects.create_superuser("root", password="x" * 16),
             AnonymousUser()]
    cases = [(slug, study_id, perm) for slug in ("rectal-resection", "reminet", "no-such-trial")
             for study_id in (here.study_id, there.study_id, "RECT-99-9999", "A\x00B")
             for perm in (Perm.VIEW_TRIAL, Perm.RANDOMISE)]

    def outcome(read):
        try:
            trial, participant = read()
        except (Http404, PermissionDenied) as exc:
            return type(exc).__name__
        assert participant.trial is trial and participant.site.pk == participant.site_id
        return trial.pk, participant.pk, participant.study_id, participant.site.code

    answers = set()
    for user in users:
        for slug, study_id, perm in cases:
            def apart():
                trial = get_trial_for(user, slug, perm)
                return trial, get_participant_for(user, trial, study_id)
            together = outcome(lambda: get_trial_and_participant_for(user, slug, study_id, perm))
            assert together == outcome(apart), (user, slug, study_id, perm)
            answers.add(together if isinstance(together, str) else "found")
    assert answers == {"Http404", "PermissionDenied", "found"}
    user = get_user_model().objects.get(pk=coordinator.pk)
    # The trial, the user's memberships in it, the participant with its site.
    with django_assert_num_queries(3):
        trial, participant = get_trial_and_participant_for(user, "rectal-resection",
                                                           here.study_id, Perm.RANDOMISE)
        assert policy.has_perm(user, Perm.RANDOMISE, trial, participant.site)
    assert participant == here


def test_the_supply_manager_sees_arms_of_kits_only(reminet, make_user):
    """Per-arm stock for the supply manager and the unblinded; participants' arms stay hidden
    from the supply manager (who sees no participant at all)."""
    manager = make_user("supply_manager", reminet)
    assert policy.can_see_kit_arms(manager, reminet)
    assert policy.is_blinded_for(manager, reminet)
    assert not policy.has_perm(manager, Perm.VIEW_PARTICIPANTS, reminet)
    assert policy.can_see_kit_arms(make_user("statistician", reminet), reminet)
    for role in ("investigator", "coordinator", "data_manager", "sponsor", "safety_officer"):
        assert not policy.can_see_kit_arms(make_user(role, reminet), reminet)
    assert policy.requires_two_factor(manager)


# Comparisons between arms (issue 22): closed reports for the DMC and the unblinded statistician
# until the trial is locked and unblinded, in a blinded and an open-label trial alike.
CLOSED_READERS = {"dmc", "statistician"}


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("trial_name", ["reminet", "rectal"])
def test_only_the_dmc_and_the_statistician_see_comparisons_while_the_trial_runs(
        request, make_user, role, trial_name):
    trial = request.getfixturevalue(trial_name)
    user = make_user(role, trial)
    assert policy.can_see_comparisons(user, trial) == (role in CLOSED_READERS)


@pytest.mark.parametrize("role", ["sponsor", "data_manager", "investigator"])
def test_the_open_label_trial_shows_arms_but_closes_comparisons_until_locked(
        rectal, make_user, role):
    user = make_user(role, rectal)
    assert not policy.is_blinded_for(user, rectal)      # an individual's arm: visible
    assert not policy.can_see_comparisons(user, rectal)  # the comparison: closed
    rectal.locked_at = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert policy.can_see_comparisons(user, rectal)


def test_a_blinded_trial_opens_comparisons_only_once_locked_and_unblinded(
        reminet, make_user):
    sponsor = make_user("sponsor", reminet)
    reminet.locked_at = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert not policy.can_see_comparisons(sponsor, reminet)   # locked, still blinded
    reminet.unblinded_at = dt.datetime(2027, 1, 2, tzinfo=dt.UTC)
    assert policy.can_see_comparisons(sponsor, reminet)
    reminet.locked_at = None
    assert not policy.can_see_comparisons(sponsor, reminet)   # unblinded, not locked


def test_a_non_member_never_sees_comparisons(rectal, make_user):
    rectal.locked_at = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert not policy.can_see_comparisons(make_user(), rectal)
