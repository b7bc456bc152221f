"""The flow diagram's withdrawal levels (issue 17, item 5), against counts made by hand."""
from __future__ import annotations

import io

import pytest
from django.utils import timezone

from reports.enrolment import enrolment_figures
from reports.enrolment_pdf import build_enrolment_report
from scheduling.services import record_withdrawal_and_replan
from tests import factories
from tests.reports.test_reports import needs_pdftotext, pdf_text, pdftotext  # noqa: F401

pytestmark = pytest.mark.django_db

LEVELS = [["treatment"], ["treatment", "consent"], ["visits"], [], ["consent"]]


@pytest.fixture
def withdrawn(reminet_ready):
    trial, coordinator = reminet_ready
    today = timezone.localdate()
    expected: dict[str, dict[str, int]] = {}
    for levels in LEVELS:
        p = factories.randomised(trial, by=coordinator, days_ago=10)
        for level in levels:
            record_withdrawal_and_replan(p, by=coordinator, level=level, withdrawn_on=today,
                                         reason="r")
        counts = expected.setdefault(p.allocation.arm.code,
                                     {"treatment": 0, "visits": 0, "consent": 0})
        if levels:
            counts[levels[-1]] += 1  # the furthest level reached
    return trial, expected


def test_each_arm_counts_its_participants_by_furthest_level(withdrawn, make_user):
    trial, expected = withdrawn
    figures = enrolment_figures(trial, viewer=make_user("statistician", trial))
    assert {a.code: a.withdrawals for a in figures.arms if a.randomised} == expected
    pooled = enrolment_figures(trial, viewer=make_user("sponsor", trial))
    assert [a.withdrawals for a in pooled.arms] == [{"treatment": 1, "visits": 1,
                                                     "consent": 2}]


@needs_pdftotext
def test_the_flow_diagram_shows_each_level(withdrawn, make_user, tmp_path):
    trial, _ = withdrawn
    sponsor = make_user("sponsor", trial)
    stream = io.BytesIO()
    build_enrolment_report(trial, viewer=sponsor, stream=stream)
    text = " ".join(pdf_text(stream.getvalue(), tmp_path).split())
    assert "stopped study treatment only: 1" in text
    assert "stopped visits, vital status followed: 1" in text
    assert "withdrew consent to data collection: 2" in text
