"""Pages of the foundation: login everywhere, home, trial page, participant pages, isolation."""
from __future__ import annotations

import pytest
from django.utils.html import escape
from django.urls import reverse

from tests import factories
from tests.routes import url_patterns


def _sample_kwargs(pattern):
    return {name: "x" for name in pattern.pattern.converters}


# Pages anyone may reach: logging in, resetting a forgotten password, choosing a language, and
# the health check the load balancer polls (it says only whether the database answers).
PUBLIC = {"login", "password_reset", "password_reset_done", "password_reset_confirm",
          "password_reset_complete", "set_language", "logout", "health"}


API_ROUTES = ("api/v1/", "api/schema/")


def test_login_is_required_everywhere_but_the_login_page(client, db):
    checked = 0
    for route, pattern in url_patterns():
        if pattern.name in PUBLIC or route.startswith("i18n/"):
            continue
        url = "/" + route
        for name in pattern.pattern.converters:
            url = url.replace(f"<slug:{name}>", "x").replace(f"<str:{name}>", "x") \
                     .replace(f"<int:{name}>", "1").replace(f"<uuid:{name}>",
                                                            "00000000-0000-0000-0000-000000000000")
        response = client.get(url)
        if route.startswith(API_ROUTES):
            # The REST API answers 401 (JSON) instead of redirecting a program to a login page.
            assert response.status_code == 401, f"{url} answered {response.status_code}"
            checked += 1
            continue
        assert response.status_code == 302, f"{url} answered {response.status_code} anonymously"
        assert response.url.startswith(reverse("login")), url
        checked += 1
    assert checked >= 4
    assert client.get(reverse("login")).status_code == 200


def test_admin_requires_login(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_home_lists_trials_with_roles(rectal, reminet, make_user, client_for):
    user = make_user("coordinator", rectal, rectal.sites.first())
    page = client_for(user).get(reverse("home")).content.decode()
    assert rectal.short_title in page and "Coordinator" in page
    assert reminet.short_title not in page


def test_trial_of_another_trial_is_404(rectal, reminet, make_user, client_for):
    user = make_user("sponsor", rectal)
    assert client_for(user).get(reverse("trial_detail", args=[reminet.slug])).status_code == 404


def test_trial_page_shows_arms_target_and_enrolment(reminet, make_user, client_for):
    user = make_user("statistician", reminet)
    page = client_for(user).get(reverse("trial_detail", args=[reminet.slug])).content.decode()
    for arm in reminet.arms.all():
        assert arm.label in page
    assert "0 randomised of 118 planned" in page and "<progress" in page
    for site in reminet.sites.all():
        assert escape(site.name) in page


def test_a_trial_without_a_target_shows_its_enrolment_alone(rectal_ready, client_for):
    """The rectal registry record states no planned enrolment: no "of", no progress bar."""
    rectal, coordinator = rectal_ready
    factories.randomised(rectal, by=coordinator)
    client = client_for(coordinator)
    home = " ".join(client.get(reverse("home")).content.decode().split())
    overview = " ".join(
        client.get(reverse("trial_detail", args=[rectal.slug])).content.decode().split())
    assert "<p>1 randomised</p>" in home
    assert "1 randomised <span" in overview and "target enrolment not stated" in overview
    assert "randomised of" not in overview and "<progress" not in overview
    assert "of None" not in home + overview


def test_home_shows_the_target_when_the_protocol_states_it(reminet_ready, client_for):
    reminet, coordinator = reminet_ready
    factories.randomised(reminet, by=coordinator)
    home = client_for(coordinator).get(reverse("home")).content.decode()
    assert "1 of 118 randomised" in home


@pytest.mark.parametrize("role", ["investigator", "coordinator", "data_manager", "sponsor"])
def test_trial_page_hides_arms_from_blinded_roles(reminet, make_user, client_for, role):
    user = make_user(role, reminet)
    page = client_for(user).get(reverse("trial_detail", args=[reminet.slug])).content.decode()
    for arm in reminet.arms.all():
        assert arm.label not in page and f">{arm.code} —" not in page
    assert "Blinded" in page


def test_trial_page_shows_arms_to_the_statistician(reminet, make_user, client_for):
    user = make_user("statistician", reminet)
    page = client_for(user).get(reverse("trial_detail", args=[reminet.slug])).content.decode()
    for arm in reminet.arms.all():
        assert arm.label in page


def test_trial_page_counts_only_own_site(rectal, make_user, client_for):
    own, other = rectal.sites.order_by("code")[:2]
    creator = make_user()
    for _ in range(2):
        factories.participant(rectal, own, by=creator)
    for _ in range(5):
        factories.participant(rectal, other, by=creator)
    user = make_user("coordinator", rectal, own)
    response = client_for(user).get(reverse("trial_detail", args=[rectal.slug]))
    rows = {row.site.code: row for row in response.context["overview"].sites}
    assert (rows[own.code].screened, rows[own.code].visible) == (2, True)
    assert (rows[other.code].screened, rows[other.code].visible) == (None, False)
    assert "<td>5</td>" not in response.content.decode()


def test_participant_list_shows_only_own_site(rectal, make_user, client_for):
    own, other = rectal.sites.order_by("code")[:2]
    creator = make_user()
    mine = factories.participant(rectal, own, by=creator)
    theirs = factories.participant(rectal, other, by=creator)
    user = make_user("investigator", rectal, own)
    page = client_for(user).get(reverse("participant_list", args=[rectal.slug])).content.decode()
    assert mine.study_id in page and theirs.study_id not in page


def test_other_sites_participant_is_404_not_403(rectal, make_user, client_for):
    own, other = rectal.sites.order_by("code")[:2]
    theirs = factories.participant(rectal, other, by=make_user())
    user = make_user("investigator", rectal, own)
    url = reverse("participant_detail", args=[rectal.slug, theirs.study_id])
    assert client_for(user).get(url).status_code == 404


def test_participant_of_another_trial_is_404(rectal, reminet, make_user, client_for):
    theirs = factories.participant(reminet, by=make_user())
    user = make_user("data_manager", rectal)
    url = reverse("participant_detail", args=[rectal.slug, theirs.study_id])
    assert client_for(user).get(url).status_code == 404


def test_all_sites_role_sees_every_site(rectal, make_user, client_for):
    own, other = rectal.sites.order_by("code")[:2]
    theirs = factories.participant(rectal, other, by=make_user())
    user = make_user("data_manager", rectal)
    url = reverse("participant_detail", args=[rectal.slug, theirs.study_id])
    assert client_for(user).get(url).status_code == 200


def test_login_logout_and_password_change(client, make_user):
    from django.http import HttpRequest

    from tests.conftest import PASSWORD

    user = make_user()
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response.url == reverse("home")
    response = client.post(reverse("password_change"), {
        "old_password": PASSWORD, "new_password1": "a-much-Longer-pass-2026",
        "new_password2": "a-much-Longer-pass-2026"})
    assert response.status_code == 302
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302
    assert client.login(request=HttpRequest(), username=user.username,
                        password="a-much-Longer-pass-2026")  # axes needs the request


def test_wrong_password_gets_a_clear_error(client, make_user):
    user = make_user()
    response = client.post(reverse("login"), {"username": user.username, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_admin_access_is_audited(client, db, client_for):
    from django.contrib.auth import get_user_model

    from core.models import AuditEvent

    admin = get_user_model().objects.create_superuser("root", "r@example.org", "x-very-long-pw-1")
    client_for(admin)
    assert client.get("/admin/trials/membership/").status_code == 200
    event = AuditEvent.objects.get(action="admin.access")
    assert event.actor == admin and "/admin/trials/membership/" in event.message


def test_health_check_answers_without_login(client, db):
    response = client.get(reverse("health"))
    assert response.status_code == 200 and response.json() == {"database": "ok"}


def test_language_choice_is_kept_on_the_profile(make_user, client, client_for):
    from accounts.models import Profile

    user = make_user()
    client_for(user)
    response = client.post(reverse("set_profile_language"), {"language": "fr", "next": "/"})
    assert response.status_code == 302 and response.url == "/"
    assert Profile.objects.get(user=user).language == "fr"
    client.cookies.clear()
    client_for(user)  # a new session, on another device
    page = client.get(reverse("home"))
    assert page.wsgi_request.LANGUAGE_CODE == "fr"


def test_unknown_language_is_refused(make_user, client, client_for):
    client_for(make_user())
    response = client.post(reverse("set_profile_language"), {"language": "xx"})
    assert response.status_code == 400 and "Unknown language 'xx'" in response.content.decode()


def test_language_redirect_stays_on_this_site(make_user, client, client_for):
    client_for(make_user())
    response = client.post(reverse("set_profile_language"),
                           {"language": "en", "next": "https://evil.example.org/"})
    assert response.url == reverse("home")


def test_protocol_load_warnings_stay_on_the_trial_page_for_those_who_read_the_analyses(
        reminet, make_user, client_for, tmp_path):
    # Issue 16: an amendment that shortens REMINET's follow-up to 36 months loads with a
    # warning (its median OS of 41.9 months could not be shown); the trial page keeps saying so.
    import yaml

    from trials.protocol import read_protocol_file
    from trials.services import load_protocol, shipped_protocol_files

    path = next(p for p in shipped_protocol_files() if p.name == "reminet.yaml")
    data = read_protocol_file(path)
    data["trial"]["follow_up_months"] = 36
    data["version"] = "1.1"
    amended = tmp_path / "reminet.yaml"
    amended.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert load_protocol(amended).warnings

    page = client_for(make_user("sponsor", reminet)).get(
        reverse("trial_detail", args=[reminet.slug])).content.decode()
    assert "Protocol warnings" in page and "endpoints[1].published[0].months" in page
    assert escape("the follow-up horizon (36 months) is shorter than the published median OS") \
        in page
    site = reminet.sites.order_by("code").first()
    page = client_for(make_user("coordinator", reminet, site)).get(
        reverse("trial_detail", args=[reminet.slug])).content.decode()
    assert "Protocol warnings" not in page


def test_the_shipped_protocols_give_no_warning_on_the_trial_page(reminet, make_user, client_for):
    page = client_for(make_user("sponsor", reminet)).get(
        reverse("trial_detail", args=[reminet.slug])).content.decode()
    assert "Protocol warnings" not in page
