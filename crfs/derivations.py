"""Derived endpoints, computed from stored CRF data: derived values are computed, not typed.

Pure functions, no database: each takes CRF data as stored (see ``outcomes/forms.py``: decimals
are strings such as "12.5", choices the protocol's code, yes/no booleans, groups lists of row
dicts, None when unanswered) and returns the derived value, so the same rule serves the form,
the reports, the exports and the tests. Sources, quoted where a rule is applied:

- RECIST 1.1: Eisenhauer EA et al., "New response evaluation criteria in solid tumours: revised
  RECIST guideline (version 1.1)", Eur J Cancer 2009;45:228-247 (section 4.3, Tables 1 and 2),
  with the RECIST working group's published clarifications where they settle a reading.
- EORTC QLQ-C30 version 3.0: Fayers PM et al., EORTC QLQ-C30 Scoring Manual, 3rd ed., 2001.
- NCI-CTCAE v4.0 grades 1-5, as coded in the ``adverse_events`` CRF.
- Clavien-Dindo classification (Dindo D et al., Ann Surg 2004;240:205-213), grades as coded in
  the ``clavien_dindo`` CRF.

``DERIVED`` at the bottom maps the names the protocol files give in ``derived:`` to functions
that return the value *in its stored form* (decimal as string, choice as the protocol's code).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from .missing_data import coded, why_coded

# --- RECIST 1.1 --------------------------------------------------------------------------------

CR, PR, SD, PD, NE = "CR", "PR", "SD", "PD", "NE"
# Patients without target lesions at baseline: RECIST 1.1 Table 2 (non-target disease only).
NA = "NA"  # target response not applicable: no target lesion at baseline
NON_CR_NON_PD = "NON-CR/NON-PD"

# The tumour_assessment CRF's non_target_status codes, read as RECIST 1.1 non-target responses:
# "absent" = "Disappearance of all non-target lesions" (CR); "present" = "Persistence of one or
# more non-target lesion(s)" (Non-CR/Non-PD); "unequivocal_progression" = "Unequivocal
# progression of existing non-target lesions" (PD); "not_evaluated" (or unanswered) = not all
# evaluated (NE).
NON_TARGET_STATUS = {
    "absent": CR,
    "present": NON_CR_NON_PD,
    "unequivocal_progression": PD,
    "not_evaluated": NE,
}

# The overall_response choice codes of the tumour_assessment CRF (both protocol files).
# Table 2's "Non-CR/non-PD" has no code of its own there; it is stored as "sd" until the
# protocols offer one. RECIST 1.1 (Table 2 footnote) prefers "Non-CR/non-PD" over SD for
# non-target disease only: add a choice `non_cr_non_pd` to both protocols and change this entry.
STORED_OVERALL_RESPONSE = {CR: "cr", PR: "pr", SD: "sd", PD: "pd", NE: "ne", NON_CR_NON_PD: "sd"}

NORMAL_NODE_MM = Decimal(10)
PR_FRACTION = Decimal("0.7")  # a decrease of at least 30 % leaves at most 70 % of the baseline
PD_FRACTION = Decimal("1.2")  # an increase of at least 20 %
PD_ABSOLUTE_MM = Decimal(5)


def _decimal(value: Any, what: str) -> Decimal | None:
    """A stored decimal ("12.5"; int or Decimal accepted) or None; anything else is bad data."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{what}: {value!r} is not a diameter")
    return number


def _target_rows(data: dict | None) -> list[dict]:
    """The target lesions still in the body: a row marked ``surgically_removed`` is left out."""
    return [row for row in ((data or {}).get("target_lesions") or [])
            if row and row.get("surgically_removed") is not True]


def _removed_rows(data: dict | None) -> list[dict]:
    # RECIST 1.1 has no rule for a target lesion removed by surgery. Choice (stated in the
    # protocol files): it is accounted for, not "missing" (4.4.2), so it does not make the
    # assessment not evaluable, and it is no longer part of any sum.
    return [row for row in ((data or {}).get("target_lesions") or [])
            if row and row.get("surgically_removed") is True]


def recist_sum_of_diameters(data: dict | None) -> Decimal | None:
    """The sum of the target lesions' diameters of one assessment, in mm.

    RECIST 1.1, 4.2: "A sum of the diameters (longest for non-nodal lesions, short axis for
    nodal lesions) for all target lesions will be calculated". The CRF's ``diameter_mm`` already
    holds the short axis for a node, so every row is added as entered. None when there is no
    target lesion row or when any row has no diameter: a partial sum is not the RECIST sum.

    "Too small to measure" is recorded as RECIST 1.1 (4.3.2) asks, then added like any
    measurement: "If the lesion is believed to be present and is faintly seen but too small to
    measure, a default value of 5 mm should be assigned"; a lesion that "has likely disappeared"
    is recorded as 0 mm.
    """
    rows = _target_rows(data)
    if not rows:
        return None
    diameters = [_decimal(row.get("diameter_mm"), f"target lesion {row.get('lesion_number')}")
                 for row in rows]
    if any(d is None for d in diameters):
        return None
    return sum(diameters, Decimal(0))


def _is_node(row: dict) -> bool:
    # An unanswered lymph_node (a draft) is read as "not a node": CR then needs 0 mm, the
    # stricter of the two readings.
    return row.get("lymph_node") is True


def _meets_cr(rows: list[dict]) -> bool:
    # RECIST 1.1, 4.3.1: "Complete Response (CR): Disappearance of all target lesions. Any
    # pathological lymph nodes (whether target or non-target) must have reduction in short axis
    # to <10 mm." 4.3.2: nodes keep their measured short axis, so "the 'sum' of lesions may not
    # be zero even if complete response criteria are met".
    if not rows:
        return False
    for row in rows:
        diameter = _decimal(row.get("diameter_mm"), f"target lesion {row.get('lesion_number')}")
        if diameter is None:
            return False
        if _is_node(row):
            if diameter >= NORMAL_NODE_MM:
                return False
        elif diameter != 0:  # 5 mm "too small to measure" means present, so not CR
            return False
    return True


def _meets_pd(current_sum: Decimal, nadir_sum: Decimal) -> bool:
    # RECIST 1.1, 4.3.1: "Progressive Disease (PD): At least a 20% increase in the sum of
    # diameters of target lesions, taking as reference the smallest sum on study (this includes
    # the baseline sum if that is the smallest on study). In addition to the relative increase
    # of 20%, the sum must also demonstrate an absolute increase of at least 5 mm."
    return (current_sum >= nadir_sum * PD_FRACTION
            and current_sum - nadir_sum >= PD_ABSOLUTE_MM)


def recist_target_response(baseline_sum: Decimal | None, nadir_sum: Decimal | None,
                           current_sum: Decimal | None, current_lesions: list[dict]) -> str:
    """Target-lesion response at one assessment: "CR", "PR", "SD", "PD" or "NE".

    ``nadir_sum`` is the smallest sum before this assessment, baseline included; ``current_sum``
    None means at least one target lesion was not measured this time. ``current_lesions`` are
    the assessment's target lesion rows, needed for CR (nodes are judged on their own size).
    The order of the checks is RECIST's: CR is a state, not an amount; PD, judged against the
    nadir, wins over a PR judged against the baseline.
    """
    if baseline_sum is None or nadir_sum is None:
        return NE
    if current_sum is None:
        # RECIST 1.1, 4.4.2 "Missing assessments and inevaluable designation": "If only a subset
        # of lesion measurements are made at an assessment, usually the case is also considered
        # NE at that time point, unless a convincing argument can be made that the contribution
        # of the individual missing lesion(s) would not change the assigned time point response.
        # This would be most likely to happen in the case of PD." A missing diameter can only
        # add to the sum, so PD on the measured lesions alone is PD whatever the others measure.
        measured = [_decimal(row.get("diameter_mm"), "target lesion") for row in current_lesions]
        partial = sum((d for d in measured if d is not None), Decimal(0))
        if any(d is not None for d in measured) and _meets_pd(partial, nadir_sum):
            return PD
        return NE
    if _meets_cr(current_lesions):
        return CR
    if _meets_pd(current_sum, nadir_sum):
        return PD
    # RECIST 1.1, 4.3.1: "Partial Response (PR): At least a 30% decrease in the sum of diameters
    # of target lesions, taking as reference the baseline sum diameters."
    if current_sum <= baseline_sum * PR_FRACTION:
        return PR
    # RECIST 1.1, 4.3.1, as clarified by the RECIST working group: "Neither sufficient shrinkage
    # (compared to baseline) to qualify for PR nor sufficient increase (taking as reference the
    # smallest sum diameters while on study) to qualify for PD".
    return SD


def recist_overall_response(target: str, non_target_status: str | None,
                            new_lesions: bool | None) -> str:
    """Overall response at one time point, RECIST 1.1 4.4.1 Table 1 (Table 2 when ``target`` is NA).

    ``target`` is a result of ``recist_target_response`` (or "NA": no target lesion at
    baseline); ``non_target_status`` the CRF's code (absent, present, unequivocal_progression,
    not_evaluated; None is read as not evaluated); ``new_lesions`` the CRF's yes/no. Returns
    "CR", "PR", "SD", "PD", "NE", or "NON-CR/NON-PD" (Table 2 only).
    """
    if non_target_status is not None and non_target_status not in NON_TARGET_STATUS:
        raise ValueError(f"non_target_status: unknown code {non_target_status!r}")
    non_target = NON_TARGET_STATUS.get(non_target_status, NE)

    # Table 1, last three rows: "PD | Any | Yes or No | PD", "Any | PD | Yes or No | PD",
    # "Any | Any | Yes | PD". RECIST 1.1, 4.3.1: "the appearance of one or more new lesions is
    # also considered progression".
    if new_lesions is True or target == PD or non_target == PD:
        return PD
    if new_lesions is None:
        # Every non-PD row of Tables 1 and 2 requires "New lesions: No"; unanswered, the
        # assessment is not complete (a choice of this module: RECIST has no row for it).
        return NE

    if target == NA:
        # Table 2 (non-target disease only): "CR | No | CR", "Non-CR/non-PD | No |
        # Non-CR/non-PD", "Not all evaluated | No | NE".
        return non_target
    if target == CR:
        # Table 1: "CR | CR | No | CR", "CR | Non-CR/non-PD | No | PR",
        # "CR | Not evaluated | No | PR".
        return CR if non_target == CR else PR
    if target == PR:
        # Table 1: "PR | Non-PD or not all evaluated | No | PR".
        return PR
    if target == SD:
        # Table 1: "SD | Non-PD or not all evaluated | No | SD".
        return SD
    if target == NE:
        # Table 1: "Not all evaluated | Non-PD | No | NE".
        return NE
    raise ValueError(f"target response: unknown value {target!r}")


def _lesion_numbers(rows: list[dict]) -> set:
    return {row.get("lesion_number") for row in rows if row.get("lesion_number") is not None}


def _assessed_sum(data: dict | None, baseline_rows: list[dict]) -> Decimal | None:
    """The sum of one follow-up assessment, None when a baseline target lesion is missing from it.

    RECIST 1.1, 4.4.2 (missing assessments): a baseline target lesion with no row at follow-up
    was not measured; a lesion that has gone is recorded as 0 mm, not left out; one marked
    ``surgically_removed`` is accounted for and adds nothing. Rows are matched
    on ``lesion_number`` ("Keep the same number for the same lesion at every assessment").
    """
    rows = _target_rows(data)
    accounted = _lesion_numbers(rows) | _lesion_numbers(_removed_rows(data))
    if len(rows) + len(_removed_rows(data)) < len(baseline_rows) or (
            _lesion_numbers(baseline_rows) - accounted):
        return None
    if not rows:  # every baseline target lesion has been removed
        return Decimal(0)
    return recist_sum_of_diameters(data)


def recist_response(baseline: dict, previous: list[dict], current: dict) -> dict:
    """RECIST 1.1 response of ``current``, given the baseline and the assessments between them.

    Returns {"sum_of_diameters": Decimal | None, "target_response": str,
    "overall_response": str, "nadir": Decimal | None}. ``previous`` are the earlier follow-up
    assessments' data in any order (including the baseline in it changes nothing); one whose
    target lesions were not all measured does not count for the nadir. A baseline without
    target lesions gives target response "NA" and the overall response of Table 2.
    """
    baseline_rows = _target_rows(baseline)
    baseline_sum = recist_sum_of_diameters(baseline)
    current_rows = _target_rows(current)

    if not baseline_rows:
        target = NA
        current_sum = None
        nadir = None
    else:
        current_sum = _assessed_sum(current, baseline_rows)
        # RECIST 1.1, PD: "taking as reference the smallest sum on study (this includes the
        # baseline sum if that is the smallest on study)". The current assessment is not part
        # of its own reference.
        sums = [baseline_sum] + [_assessed_sum(p, baseline_rows) for p in previous]
        known = [s for s in sums if s is not None]
        nadir = min(known) if known else None
        target = recist_target_response(baseline_sum, nadir, current_sum, current_rows)

    overall = recist_overall_response(target, (current or {}).get("non_target_status"),
                                      (current or {}).get("new_lesions"))
    return {"sum_of_diameters": current_sum, "target_response": target,
            "overall_response": overall, "nadir": nadir}


# --- EORTC QLQ-C30 version 3.0 -------------------------------------------------------------------

# Scoring manual, table "Scoring the QLQ-C30 version 3.0": scale -> (kind, items, item range).
# "Item range is the difference between the possible maximum and the minimum response to
# individual items; most items take values from 1 to 4, giving range = 3." Items 29-30 go 1-7.
QLQ_C30_SCALES: dict[str, tuple[str, tuple[int, ...], int]] = {
    "QL2": ("global", (29, 30), 6),
    "PF2": ("functional", (1, 2, 3, 4, 5), 3),
    "RF2": ("functional", (6, 7), 3),
    "EF": ("functional", (21, 22, 23, 24), 3),
    "CF": ("functional", (20, 25), 3),
    "SF": ("functional", (26, 27), 3),
    "FA": ("symptom", (10, 12, 18), 3),
    "NV": ("symptom", (14, 15), 3),
    "PA": ("symptom", (9, 19), 3),
    "DY": ("symptom", (8,), 3),
    "SL": ("symptom", (11,), 3),
    "AP": ("symptom", (13,), 3),
    "CO": ("symptom", (16,), 3),
    "DI": ("symptom", (17,), 3),
    "FI": ("symptom", (28,), 3),
}


def _item(data: dict, number: int, item_range: int) -> int | None:
    value = data.get(f"q{number}")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= item_range + 1:
        raise ValueError(f"QLQ-C30 item q{number}: {value!r} is not an answer from 1 to "
                         f"{item_range + 1}")
    return value


def qlq_c30_scores(data: dict | None) -> dict[str, float | None]:
    """The 15 QLQ-C30 v3.0 scale scores (0-100) of one questionnaire, None where not scorable.

    Not rounded: round only for display, so means and differences are computed on exact scores.
    """
    data = data or {}
    scores: dict[str, float | None] = {}
    for scale, (kind, items, item_range) in QLQ_C30_SCALES.items():
        answers = [a for a in (_item(data, n, item_range) for n in items) if a is not None]
        # Scoring manual, "Missing items": "Have at least half of the items from the scale been
        # answered? If Yes, use all the items that were completed, and apply the standard
        # equations [...]; ignore any items with missing values when making the calculations.
        # If No, set scale score to missing. For single-item measures, set score to missing."
        if 2 * len(answers) < len(items):
            scores[scale] = None
            continue
        # "Raw score: RS = (I1 + I2 + ... + In)/n". Fractions keep 1.8 exactly 1.8.
        raw = Fraction(sum(answers), len(answers))
        if kind == "functional":
            # "Functional scales: S = {1 - (RS - 1)/range} x 100"
            score = (1 - (raw - 1) / item_range) * 100
        else:
            # "Symptom scales / items: S = {(RS - 1)/range} x 100"
            # "Global health status / QoL: S = {(RS - 1)/range} x 100"
            score = (raw - 1) / item_range * 100
        scores[scale] = float(score)
    return scores


# --- NCI-CTCAE v4.0 ------------------------------------------------------------------------------

CTCAE_GRADES = (1, 2, 3, 4, 5)  # the adverse_events CRF's grade codes


def _graded_events(adverse_event_crfs: Iterable[dict]) -> Iterable[tuple[str, int]]:
    """(term, grade) of every graded row of every adverse-event CRF.

    A row without a grade exists only in a draft (the grade is required to complete the form):
    it is not yet graded and is left out rather than guessed.
    """
    for crf in adverse_event_crfs:
        for row in (crf or {}).get("events") or []:
            grade = (row or {}).get("grade")
            if grade is None:
                continue
            if isinstance(grade, bool) or grade not in CTCAE_GRADES:
                raise ValueError(f"CTCAE grade {grade!r} is not one of {CTCAE_GRADES}")
            yield (row.get("term") or "").strip(), grade


def worst_ctcae_grade(adverse_event_crfs: list[dict]) -> int | None:
    """The highest CTCAE grade over all events of all of a participant's adverse-event CRFs.

    None when no event has been graded (no adverse event, or none recorded yet): CTCAE v4.0
    has no grade 0, and "none reported" must not read as a grade.
    """
    return max((grade for _, grade in _graded_events(adverse_event_crfs)), default=None)


def worst_grade_by_term(adverse_event_crfs: list[dict]) -> dict[str, int]:
    """The highest CTCAE grade of each adverse-event term over all of a participant's CRFs.

    Terms are the CTCAE labels the forms store (docs/crfs.md, "Terms"), or free text stored
    before the term list: they are matched ignoring case and surrounding spaces, and keyed by
    the spelling first met. Old free text is not mapped to a term ("Diarrhoea" stays apart from
    "Diarrhea"): that is coding, done when the form is next saved, not arithmetic.
    """
    worst: dict[str, int] = {}
    spelling: dict[str, str] = {}
    for term, grade in _graded_events(adverse_event_crfs):
        key = spelling.setdefault(term.casefold(), term)
        worst[key] = max(grade, worst.get(key, grade))
    return worst


# --- Clavien-Dindo -------------------------------------------------------------------------------

# The clavien_dindo CRF's grade codes, mildest first (Dindo 2004, Table 1). "0" is the derived
# field's code for "no complication".
CLAVIEN_DINDO_ORDER = ("I", "II", "IIIa", "IIIb", "IVa", "IVb", "V")
NO_COMPLICATION = "0"


def clavien_dindo_worst_grade(data: dict | None) -> str | None:
    """The worst Clavien-Dindo grade of one assessment: "0" to "V", as the CRF codes them.

    "0" when ``any_complication`` is no ("Grade 0 means no complication: it is the worst grade
    when no complication is recorded", protocol, CRF clavien_dindo). None while it cannot be
    told, which only a draft allows: ``any_complication`` unanswered, or yes with no graded
    complication row yet - "0" would then deny a complication the investigator has reported.
    Rows without a grade are ignored when others are graded.
    """
    data = data or {}
    answered = data.get("any_complication")
    if answered is None:
        return None
    if answered is False:
        return NO_COMPLICATION
    grades = []
    for row in (r for r in (data.get("complications") or []) if r):
        grade = row.get("grade")
        if grade is None:
            continue
        if grade not in CLAVIEN_DINDO_ORDER:
            raise ValueError(f"Clavien-Dindo grade {grade!r} is not one of {CLAVIEN_DINDO_ORDER}")
        grades.append(grade)
    if not grades:
        return None
    return max(grades, key=CLAVIEN_DINDO_ORDER.index)


# --- the protocol's ``derived:`` names -----------------------------------------------------------

def _derived_sum_of_diameters(current: dict, context: dict) -> str | None:
    baseline = context.get("baseline")
    if baseline is None:  # this is the baseline assessment: its own sum is the reference
        total = recist_sum_of_diameters(current)
    else:
        total = recist_response(baseline, context.get("previous") or [], current)[
            "sum_of_diameters"]
    # Stored like the field: decimal, 1 place ("decimals: 1" in the protocol files).
    return None if total is None else str(total.quantize(Decimal("0.1")))


def _derived_overall_response(current: dict, context: dict) -> str | None:
    if context.get("undated"):  # cannot be placed after a baseline, nor be one
        return STORED_OVERALL_RESPONSE[NE]
    baseline = context.get("baseline")
    if baseline is None:  # the baseline assessment is the reference: it has no response
        return None
    result = recist_response(baseline, context.get("previous") or [], current)
    return STORED_OVERALL_RESPONSE[result["overall_response"]]


def _derived_clavien_dindo(current: dict, context: dict) -> str | None:
    return clavien_dindo_worst_grade(current)


def _coded_diameters(rows: list[dict]) -> str:
    """The target lesions whose diameter is a missing-data code, as a reason: "lesion 2
    diameter: not done". A code is never a measurement: it makes the sum unknown."""
    found = []
    for i, row in enumerate(rows, start=1):
        entry = coded(row, "diameter_mm")
        if entry is not None:
            number = row.get("lesion_number") if row.get("lesion_number") is not None else i
            found.append(f"lesion {number} diameter: {why_coded(entry)}")
    return "; ".join(found)


def _why_no_recist_value(current: dict, context: dict) -> str:
    """Why a RECIST sum is empty or a response not evaluable (or empty: the baseline)."""
    baseline = context.get("baseline")
    if context.get("undated"):
        return "no assessment date: it cannot be placed after the baseline"
    if baseline is None:
        rows = _target_rows(current)
        if not rows:
            return "no target lesion at baseline (RECIST 1.1 Table 2: non-target disease only)"
        if recist_sum_of_diameters(current) is None:
            return _coded_diameters(rows) or "a target lesion has no diameter"
        return "baseline assessment: the reference of later responses"
    baseline_rows = _target_rows(baseline)
    if not baseline_rows:
        return "no target lesion at baseline (RECIST 1.1 Table 2: non-target disease only)"
    if recist_sum_of_diameters(baseline) is None:
        return ("the baseline sum is unknown: "
                + (_coded_diameters(baseline_rows) or "a baseline target lesion has no diameter"))
    if _assessed_sum(current, baseline_rows) is None:
        coded_here = _coded_diameters(_target_rows(current))
        if coded_here:
            return f"{coded_here} (RECIST 1.1 4.4.2: not evaluable)"
        return "a baseline target lesion is not measured at this assessment (RECIST 1.1 4.4.2)"
    if current.get("new_lesions") is None:
        return "new lesions not answered"
    return "non-target lesions not evaluated"


def _why_no_clavien_dindo(current: dict, context: dict) -> str:
    if (current or {}).get("any_complication") is None:
        return "whether there was a complication is not answered"
    return "a complication is reported but none is graded yet"


DerivedFunction = Callable[[dict, dict], Any]

# name in the protocol's ``derived:`` -> f(current_data, context) -> value as stored in the CRF.
# ``context`` is supplied by the caller; keys read:
#   "baseline": dict | None - the participant's baseline tumour_assessment data; None when the
#               CRF being derived *is* the baseline (its sum is then computed, its response None);
#   "previous": list[dict]  - the participant's tumour_assessment data dated after the baseline
#               and before the current one (for the nadir); order does not matter;
#   "undated":  bool        - the current record has no date yet: it cannot be placed, so its
#               response is not evaluable.
# Functions that need neither ignore the context. A name a protocol uses but this registry
# lacks is a protocol error the caller should report, not skip.
DERIVED: dict[str, DerivedFunction] = {
    "recist_sum_of_diameters": _derived_sum_of_diameters,
    "recist_overall_response": _derived_overall_response,
    "clavien_dindo_worst_grade": _derived_clavien_dindo,
}

# Derivations that read the context, i.e. the participant's other records of the same CRF: a
# change to any of those records (its data or its date) can change their value, so saving one
# re-derives them all (``crfs.services.rederive``). The others read their own record only.
ACROSS_RECORDS = frozenset({"recist_sum_of_diameters", "recist_overall_response"})

# What a derivation stores when it cannot be computed. A response has its "not evaluable" code;
# a sum (a decimal) or a grade has none, so it stays empty. Either way the reason is stored
# beside it, under NOTES_KEY: never a silent blank.
NOT_EVALUABLE: dict[str, Any] = {"recist_overall_response": STORED_OVERALL_RESPONSE[NE]}
NOTES_KEY = "derivation_notes"  # {field code: why its derived value is empty or not evaluable}

_WHY_NOT: dict[str, DerivedFunction] = {
    "recist_sum_of_diameters": _why_no_recist_value,
    "recist_overall_response": _why_no_recist_value,
    "clavien_dindo_worst_grade": _why_no_clavien_dindo,
}


def derive_fields(fields: list[dict], current: dict, context: dict) -> tuple[dict, dict]:
    """The values of the derived ``fields`` of one record, and why for each that is empty or
    not evaluable: ``({code: value}, {code: reason})``. Unreadable data (a diameter that is not
    a number, a code the protocol does not offer) give the not-evaluable value and say which,
    instead of failing the save."""
    values: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for f in fields:
        name = f["derived"]
        compute = DERIVED.get(name)
        if compute is None:
            continue
        try:
            value = compute(current, context)
            if value is None or value == NOT_EVALUABLE.get(name):
                why = _WHY_NOT.get(name)
                notes[f["code"]] = (why(current, context) if why
                                    else "cannot be computed from these answers")
        except ValueError as error:
            value = NOT_EVALUABLE.get(name)
            notes[f["code"]] = f"unreadable data: {error}"
        values[f["code"]] = value
    return values, notes
