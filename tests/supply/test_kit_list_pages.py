"""The statistician's kit-list pages: list, generate, import, seal, verify; 404 for every other
role; the rectal trial (no product supply) says it has no kit list."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Profile
from randomisation import kitlist
from supply.models import Kit, KitList, KitListStatus

LATER = (timezone.localdate() + dt.timedelta(days=400)).isoformat()


def url(trial) -> str:
    return reverse("kit_lists", args=[trial.slug])


def upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("kits.csv", text.encode("utf-8"), content_type="text/csv")


@pytest.mark.parametrize("role", ["investigator", "coordinator", "data_manager", "sponsor",
                                  "supply_manager"])
def test_kit_lists_are_404_for_everyone_but_the_statistician(reminet, make_user, client, role,
                                                            client_for):
    client_for(make_user(role, reminet))
    assert client.get(url(reminet)).status_code == 404
    assert client.post(url(reminet), {"action": "generate", "kits": 20, "lot_size": 10,
                                      "expires_on": LATER}).status_code == 404
    assert not KitList.objects.exists()


def test_the_statistician_generates_seals_and_verifies_a_kit_list(reminet, statistician, client,
                                                                   client_for):
    client_for(statistician)
    response = client.post(url(reminet), {"action": "generate", "kits": 40, "lot_size": 10,
                                          "expires_on": LATER, "seed": "page-seed"}, follow=True)
    kit_list = KitList.objects.get(trial=reminet)
    assert kit_list.status == KitListStatus.DRAFT and kit_list.seed == "page-seed"
    html = response.content.decode()
    assert "Draft kit list #1 generated." in html
    counts = html[html.index('data-testid="per-arm"'):]
    assert "LAN: 20" in counts[:200] and "PBO: 20" in counts[:200]
    assert '<dd data-testid="kit-count">40</dd>' in html
    assert f"<dd>{LATER}</dd>" in html  # the expiry date, in English's one format (ISO)
    Profile.objects.update_or_create(user=statistician, defaults={"language": "fr"})
    french = client_for(statistician).get(url(reminet)).content.decode()
    assert f"<dd>{dt.date.fromisoformat(LATER):%d/%m/%Y}</dd>" in french  # and in French's
    Profile.objects.filter(user=statistician).update(language="en")
    client_for(statistician)
    response = client.post(url(reminet), {"action": "seal", "list": kit_list.pk}, follow=True)
    kit_list.refresh_from_db()
    assert kit_list.status == KitListStatus.SEALED
    assert f"SHA-256 {kit_list.digest}" in response.content.decode()
    response = client.post(url(reminet), {"action": "verify", "list": kit_list.pk}, follow=True)
    assert f"Kit list #1 matches its seal {kit_list.digest}." in response.content.decode()
    # Sealing again is refused with the service's words, nothing changed.
    response = client.post(url(reminet), {"action": "seal", "list": kit_list.pk}, follow=True)
    assert "Kit list #1 is already sealed." in response.content.decode()


def test_verify_says_when_a_kit_list_no_longer_matches_its_seal(reminet, statistician, client,
                                                                 client_for):
    kit_list = kitlist.seal(kitlist.generate(reminet, by=statistician, kits=20, lot_size=10,
                                             expires_on=dt.date.fromisoformat(LATER)),
                            by=statistician)
    kit = kit_list.kits.order_by("number").first()
    other = kit_list.kits.exclude(arm=kit.arm).order_by("number").first()
    Kit.objects.filter(pk=kit.pk).update(arm=other.arm)  # tampering behind the services' back
    client_for(statistician)
    html = client.post(url(reminet), {"action": "verify", "list": kit_list.pk},
                       follow=True).content.decode()
    assert "does NOT match its seal" in html and kitlist.digest(kit_list) in html


def test_a_draft_has_no_seal_to_verify(reminet, statistician, client, client_for):
    draft = kitlist.generate(reminet, by=statistician, kits=20, lot_size=10,
                             expires_on=dt.date.fromisoformat(LATER))
    client_for(statistician)
    html = client.post(url(reminet), {"action": "verify", "list": draft.pk},
                       follow=True).content.decode()
    assert "is a draft: it has no seal to verify against" in html


def test_the_generate_form_puts_each_refusal_next_to_its_field(reminet, statistician, client,
                                                               client_for):
    client_for(statistician)
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    response = client.post(url(reminet), {"action": "generate", "kits": 21, "lot_size": 3,
                                          "expires_on": yesterday})
    assert response.status_code == 400
    form = response.context["generate_form"]
    assert "multiple of 2" in " ".join(form.errors["kits"])
    assert "multiple of 2" in " ".join(form.errors["lot_size"])
    assert "after today" in " ".join(form.errors["expires_on"])
    response = client.post(url(reminet), {"action": "generate", "kits": "many",
                                          "lot_size": 10, "expires_on": "31/02/2030"})
    assert response.status_code == 400
    assert set(response.context["generate_form"].errors) == {"kits", "expires_on"}
    assert not KitList.objects.exists()


def test_an_imported_kit_list_is_a_draft_to_seal(reminet, statistician, client, client_for):
    client_for(statistician)
    rows = ["kit_number,arm,lot,expires_on", f"ACE347,LAN,LOT-1,{LATER}",
            f"HKM379,PBO,LOT-1,{LATER}"]
    response = client.post(url(reminet), {"action": "import", "file": upload("\n".join(rows))},
                           follow=True)
    assert "Draft kit list #1 imported." in response.content.decode()
    kit_list = KitList.objects.get()
    assert kit_list.source == "imported"
    assert sorted(kit_list.kits.values_list("number", "arm__code")) == [("ACE347", "LAN"),
                                                                          ("HKM379", "PBO")]


def test_a_refused_import_lists_every_row_and_writes_nothing(reminet, statistician, client,
                                                             client_for):
    client_for(statistician)
    rows = ["kit_number,arm,lot,expires_on", f"ACE347,LAN,LOT-1,{LATER}",
            f"ACE347,PBO,LOT-1,{LATER}", f"HKM379,XYZ,LOT-1,{LATER}"]
    response = client.post(url(reminet), {"action": "import", "file": upload("\n".join(rows))})
    assert response.status_code == 400
    html = response.content.decode()
    errors = html[html.index('data-testid="import-errors"'):]
    assert "row 3: kit number ACE347 repeats row 2" in errors
    assert "row 4: unknown arm &#x27;XYZ&#x27;" in errors
    assert not KitList.objects.exists() and not Kit.objects.exists()


def test_a_file_that_is_not_utf8_text_is_refused_on_the_form(reminet, statistician, client,
                                                             client_for):
    client_for(statistician)
    bad = SimpleUploadedFile("kits.csv", b"\xff\xfe\x00k\x00i", content_type="text/csv")
    response = client.post(url(reminet), {"action": "import", "file": bad})
    assert response.status_code == 400
    assert "not UTF-8 text" in response.content.decode()
    assert not KitList.objects.exists()


def test_an_unknown_list_is_404(reminet, statistician, client, client_for):
    client_for(statistician)
    assert client.post(url(reminet), {"action": "seal", "list": "abc"}).status_code == 404
    assert client.post(url(reminet), {"action": "verify", "list": 999}).status_code == 404


def test_the_rectal_trial_has_no_kit_list_and_no_link_to_one(rectal, reminet, statistician,
                                                             client, client_for):
    client_for(statistician)
    response = client.get(url(rectal))
    assert response.status_code == 200
    assert "dispenses no kits" in response.content.decode()
    response = client.post(url(rectal), {"action": "generate", "kits": 20, "lot_size": 10,
                                         "expires_on": LATER}, follow=True)
    assert "dispenses no kits" in response.content.decode()
    assert not KitList.objects.exists()
    link = url(rectal)
    assert link not in client.get(reverse("trial_detail", args=[rectal.slug])).content.decode()
    assert link not in client.get(reverse("allocation_lists", args=[rectal.slug])).content.decode()
    assert url(reminet) in client.get(reverse("trial_detail", args=[reminet.slug])).content.decode()
    assert url(reminet) in client.get(reverse("allocation_lists",
                                              args=[reminet.slug])).content.decode()


def test_the_kit_list_page_runs_a_fixed_number_of_queries(reminet, statistician, client,
                                                          client_for, django_assert_num_queries):
    """Lists, their kits per arm, the arms: as many queries for four lists as for one."""
    client_for(statistician)
    kitlist.generate(reminet, by=statistician, kits=20, lot_size=10,
                     expires_on=dt.date.fromisoformat(LATER))
    client.get(url(reminet))  # the session's first request of the minute saves it
    with CaptureQueriesContext(connection) as one:
        client.get(url(reminet))
    for n in range(3):
        kitlist.generate(reminet, by=statistician, kits=20, lot_size=10,
                         expires_on=dt.date.fromisoformat(LATER), seed=f"more-{n}")
    with django_assert_num_queries(len(one.captured_queries)):
        html = client.get(url(reminet)).content.decode()
    assert html.count('data-testid="kit-list"') == 4
