"""The subject matrix over the API: the page's filters, its rows and cells, site isolation,
blinding, and a cost in queries that does not grow with the trial."""
from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crfs import services as crfs
from tests.api import world
from tests.randomisation.test_blinding import assert_no_arm


def _url(trial) -> str:
    return reverse("api_subject_matrix", args=[trial.slug])


def test_rows_are_the_sites_participants_with_a_cell_per_expected_form(places, make_user, api):
    trial, own, other = places.trial, places.own, places.other
    coordinator = make_user("coordinator", trial, own.site)
    response = api(coordinator).get(_url(trial))
    assert response.status_code == 200, response.content
    body = response.json()
    mine = {own.participant.study_id, own.screened.study_id}  # randomised, and only screened
    assert {r["study_id"] for r in body["results"]} == mine
    assert body["count"] == 2 and body["next"] is None and body["previous"] is None
    row = next(r for r in body["results"] if r["study_id"] == own.participant.study_id)
    assert "arm" not in row  # REMINET is double-blind
    cells = {(c["visit"], c["occurrence"], c["crf"]): c for c in row["cells"]}
    baseline = own.participant.visits.get(code="baseline")
    for code in baseline.crfs:
        cell = cells[("baseline", 1, code)]
        assert cell["visit_id"] == baseline.pk
        assert cell["state"] in ("missing", "not_started")
    assert {"visit": "baseline", "occurrence": 1, "crf": baseline.crfs[0],
            "crf_label": body["columns"][0]["crf_label"]} == body["columns"][0]
    assert_no_arm(trial, response.content.decode(), "API subject matrix")
    # The data manager sees both sites; the site filter narrows to one.
    both = api(places.data_manager).get(_url(trial)).json()
    theirs = {other.participant.study_id, other.screened.study_id}
    assert {r["study_id"] for r in both["results"]} == mine | theirs
    one = api(places.data_manager).get(_url(trial), {"site": other.site.code}).json()
    assert {r["study_id"] for r in one["results"]} == theirs


def test_a_record_cell_links_to_the_record(places, make_user, api):
    trial, own = places.trial, places.own
    visit = own.participant.visits.get(code="baseline")
    from scheduling.services import save_crf_and_replan
    record = save_crf_and_replan(own.participant, visit.crfs[0], {}, by=places.staff,
                                 complete=False, visit=visit)
    crfs.raise_query(record, by=places.data_manager, field_path=next(iter(
        record.definition["fields"]))["code"], text="?")
    body = api(places.data_manager).get(_url(trial), {"state": "query"}).json()
    assert [r["study_id"] for r in body["results"]] == [own.participant.study_id]
    assert body["count"] is None  # a state filter: not counted
    cell = next(c for c in body["results"][0]["cells"] if c["record_id"] == record.pk)
    assert cell["state"] == "draft" and cell["open_queries"] == 1
    assert cell["url"].endswith(reverse("api_crf", args=[trial.slug, own.participant.study_id,
                                                         record.pk]))
    assert api(places.data_manager).get(cell["url"]).status_code == 200


def test_bad_filters_say_which(places, make_user, api):
    trial, own, other = places.trial, places.own, places.other
    coordinator = make_user("coordinator", trial, own.site)
    for params, field in [({"site": other.site.code}, "site"), ({"visit": "nope"}, "visit"),
                          ({"state": "approved"}, "state"), ({"status": "x"}, "status"),
                          ({"page_size": 0}, "page_size"), ({"page_size": 1000}, "page_size"),
                          ({"after": "a\x00b"}, "after"), ({"visit_page": "x"}, "visit_page")]:
        response = api(coordinator).get(_url(trial), params)
        assert response.status_code == 400, params
        assert field in response.json(), (params, response.json())


def test_pages_follow_next_and_previous(places, api):
    trial = places.trial
    for _ in range(2):
        world.build(trial, places.own.site, staff=places.staff,
                    data_manager=places.data_manager)
    client = api(places.data_manager)
    first = client.get(_url(trial), {"page_size": 4}).json()
    assert first["count"] == 8 and len(first["results"]) == 4 and first["previous"] is None
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 4 and second["next"] is None
    back = client.get(second["previous"]).json()
    assert back["results"] == first["results"]
    seen = [r["study_id"] for r in first["results"] + second["results"]]
    assert seen == sorted(seen) and len(set(seen)) == 8


def test_the_cost_in_queries_does_not_grow_with_the_trial(places, api):
    trial = places.trial
    client = api(places.data_manager)
    client.get(_url(trial))

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(_url(trial)).status_code == 200
        return len(ctx.captured_queries)

    before = count()
    for _ in range(3):
        extra = world.build(trial, places.own.site, staff=places.staff,
                            data_manager=places.data_manager)
        crfs.raise_query(extra.record, by=places.data_manager, field_path="INC1", text="?")
    assert count() == before
