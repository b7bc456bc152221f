"""Issue 17: the enrolment report's flow diagram starts from the screening log (CONSORT 2010:
assessed → excluded with reasons → randomised), with the randomised in error flagged. Checked
against counts worked out by hand on a small data set."""
from __future__ import annotations

import io

import pytest
from django.utils import timezone

from patients.screening import record_screening_log_entry
from randomisation import services as randomisation
from reports.enrolment import Exclusion, enrolment_figures
from reports.enrolment_pdf import build_enrolment_report
from tests import factories
from tests.randomisation.test_blinding import assert_no_arm
from tests.reports.test_reports import needs_pdftotext, pdf_text, pdftotext  # noqa: F401


@pytest.fixture
def worked(reminet, statistician, make_user):
    """REMINET, by hand:
    - screening log: site 1: 2 × "L1 too short", 1 × "declined"; site 2: 1 × "other" → 4;
    - registered: 3 randomised (one of them in error), 2 screen failures (one failing INC2,
      one failing INC2 and EXC1), 1 screened with no eligibility form yet → 6.
    So: assessed 10; excluded 6 = 4 (log) + 2 (screen failures); criteria not met: INC2 2,
    EXC1 1; eligible 3; randomised 3, of whom 1 in error; awaiting 1."""
    factories.sealed_list(reminet, by=statistician)
    staff = make_user("coordinator", reminet)
    one, two = reminet.sites.order_by("code")[:2]
    today = timezone.localdate()
    for site, reason in [(one, "l1_too_short"), (one, "l1_too_short"), (one, "declined"),
                         (two, "other")]:
        record_screening_log_entry(reminet, site=site, screened_on=today, reason=reason,
                                   by=staff)
    randomised = [factories.randomised(reminet, site, by=staff) for site in (one, two, one)]
    randomisation.record_randomised_in_error(randomised[2].allocation, by=staff,
                                             reason="Registered twice")
    factories.eligible_participant(reminet, two, by=staff, INC2=False)
    factories.eligible_participant(reminet, one, by=staff, INC2=False, EXC1=True)
    factories.participant(reminet, two, by=staff)
    return reminet, randomised[2]


def test_the_flow_counts_match_the_hand_counts(worked, make_user):
    trial, _in_error = worked
    f = enrolment_figures(trial, viewer=make_user("sponsor", trial))
    assert (f.assessed, f.totals.logged, f.totals.screened) == (10, 4, 6)
    assert f.excluded == 6 and f.totals.not_eligible == 2
    labels = {r["code"]: r["label"] for r in trial.definition["screening"]["non_inclusion_reasons"]}
    # In the protocol's order (l1_too_short, then declined, then other).
    assert f.log_reasons == [Exclusion("l1_too_short", labels["l1_too_short"], 2),
                             Exclusion("declined", labels["declined"], 1),
                             Exclusion("other", labels["other"], 1)]
    assert [(e.code, e.n) for e in f.failed_criteria] == [("INC2", 2), ("EXC1", 1)]
    assert (f.totals.eligible, f.randomised, f.awaiting) == (3, 3, 1)
    # Blinded sponsor: one pooled column, with the randomised in error in it.
    assert [(a.code, a.randomised, a.in_error) for a in f.arms] == [("", 3, 1)]
    by_site = {s.code: (s.logged, s.screened, s.not_eligible, s.randomised) for s in f.sites}
    one, two = trial.sites.order_by("code")[:2]
    assert by_site == {one.code: (3, 3, 1, 2), two.code: (1, 3, 1, 1)}


def test_the_unblinded_statistician_sees_the_error_in_its_arm(worked, statistician):
    trial, in_error = worked
    f = enrolment_figures(trial, viewer=statistician)
    arms = {a.code: (a.randomised, a.in_error) for a in f.arms}
    assert sum(n for n, _ in arms.values()) == 3
    assert arms[in_error.allocation.arm.code][1] == 1
    assert sum(e for _, e in arms.values()) == 1  # still counted in its arm (ITT)


@needs_pdftotext
def test_the_pdf_flow_diagram_shows_the_hand_counts_and_keeps_blinding(worked, make_user,
                                                                       tmp_path):
    trial, _ = worked
    stream = io.BytesIO()
    build_enrolment_report(trial, viewer=make_user("sponsor", trial), stream=stream)
    text = " ".join(pdf_text(stream.getvalue(), tmp_path).split())
    assert "Assessed for eligibility" in text
    assert "n = 10 (screening log 4, registered 6)" in text
    assert "Excluded: n = 6" in text
    assert "screening log, not registered: 4" in text
    assert "Less than 2 months of first-line treatment: 2" in text
    assert "screen failures: 2" in text
    assert "INC2 Tumour grade G1 or G2: 2" in text
    assert "of whom randomised in error: 1" in text
    assert "All arms (pooled: blinded)" in text
    assert_no_arm(trial, text, "the blinded sponsor's flow diagram")
