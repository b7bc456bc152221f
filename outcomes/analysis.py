"""What the Outcomes page and the outcomes report show, for one reader: each endpoint's
Kaplan-Meier analysis, adverse events by worst CTCAE grade and the Clavien-Dindo distribution.

Who sees comparisons is settled here, once: a reader who may not see comparisons between arms
(``policy.can_see_comparisons``) gets pooled figures only - one group, no log-rank test, no
hazard ratio, no per-arm safety table, no arm code or label anywhere in the result.
Arm-level results are a closed report: for the data monitoring committee and the unblinded
statistician while the trial runs, for every member once it is locked and unblinded (in an
open-label trial too: an individual's arm is not secret there, a running comparison is). Participants are those of the sites where the reader holds
``Perm.VIEW_REPORTS``. Numbers are formatted here so that templates and the PDF only print.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.translation import gettext as _, gettext_lazy, ngettext

from crfs.derivations import CLAVIEN_DINDO_ORDER, NO_COMPLICATION, worst_ctcae_grade
from crfs.models import CRFRecord
from patients.models import counted
from randomisation.models import Allocation
from trials import policy
from trials.models import Trial

from . import endpoints as endpoint_values
from .interim import InterimLook, interim_looks
from .survival import (EndpointAnalysis, GroupResult, HazardRatio, LandmarkRate, analyse,
                       methods_text)


# --------------------------------------------------------------------------- formatting


def fmt_months(value: float | None) -> str:
    return _("not reached") if value is None else f"{value:.1f}"


def fmt_median(group: GroupResult) -> str:
    m = group.median
    if group.n == 0:
        return "—"
    return f"{fmt_months(m.estimate)} ({fmt_months(m.lower)}; {fmt_months(m.upper)})"


def fmt_landmark(rate: LandmarkRate) -> str:
    if rate.rate is None:
        return _("no participant evaluable")
    return (f"{100 * rate.rate:.1f} % ({100 * rate.lower:.1f}; {100 * rate.upper:.1f}), "
            f"{rate.event_free}/{rate.evaluable}")


def fmt_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_hazard_ratio(ratio: HazardRatio) -> str:
    names = {"arm": ratio.arm, "reference": ratio.reference}   # arm codes
    if ratio.estimate is None:
        return _("Hazard ratio, %(arm)s vs %(reference)s: not estimable (%(reason)s)") % {
            **names, "reason": ratio.reason}
    return _("Hazard ratio, %(arm)s vs %(reference)s: %(hr)s (95 %% CI %(lower)s; %(upper)s), "
             "Wald p %(p)s") % {**names, "hr": f"{ratio.estimate:.2f}",
                                "lower": f"{ratio.lower:.2f}", "upper": f"{ratio.upper:.2f}",
                                "p": fmt_p(ratio.p)}


@dataclass(frozen=True)
class EndpointRow:
    label: str          # the group
    n: int
    events: int
    median: str
    landmarks: list[tuple[str, str]]   # (rate with its exact CI, Kaplan-Meier estimate)


@dataclass
class EndpointSection:
    analysis: EndpointAnalysis
    landmark_titles: list[str]
    rows: list[EndpointRow]
    logrank: str | None
    hazard_ratios: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    svg: str = ""       # the Kaplan-Meier plot, filled by the page

    @property
    def code(self) -> str:
        return self.analysis.code


@dataclass
class SafetyTable:
    title: str
    columns: list[str]               # group labels with their n
    rows: list[tuple[str, list[str]]]
    note: str = ""


@dataclass
class OutcomesView:
    trial: Trial
    arm_level: bool
    randomised: int
    sections: list[EndpointSection]
    safety: list[SafetyTable]
    methods: str
    generated_at: dt.datetime = field(default_factory=timezone.now)
    # Pooled although the reader is not blinded to arms: comparisons are closed to them
    # (open-label, or unblinded but not locked).
    closed: bool = False
    # The protocol's interim analyses against their boundaries: per-arm readers only.
    interims: list["InterimRow"] = field(default_factory=list)


@dataclass(frozen=True)
class InterimRow:
    look: InterimLook
    information: str
    statistic: str
    boundary: str
    verdict: str


def _interim_row(look: InterimLook) -> InterimRow:
    what = _("events") if look.measure == "events" else _("participants")
    if look.planned is None:
        information = _("%(observed)s %(what)s; planned number not stated in the protocol: the "
                        "fraction reached (interim at %(declared)s %%) cannot be computed") % {
            "observed": look.observed, "what": what,
            "declared": f"{100 * look.declared_fraction:g}"}
    else:
        information = _("%(observed)s of %(planned)s %(what)s planned (%(fraction)s %%; interim "
                        "at %(declared)s %%)") % {
            "observed": look.observed, "planned": look.planned, "what": what,
            "fraction": f"{100 * look.fraction:.1f}",
            "declared": f"{100 * look.declared_fraction:g}"}
    statistic = (_("not computable (no log-rank test of two arms: see the endpoint)")
                 if look.statistic is None else
                 f"|Z| = {look.statistic:.3f} (p {fmt_p(look.p)})")
    where = (_("at the information observed") if look.fraction is not None else
             _("at the declared information"))
    boundary = _("|Z| ≥ %(z)s (nominal two-sided p %(p)s), %(method)s, %(where)s (%(at)s %%)") % {
        "z": f"{look.boundary_z:.3f}", "p": f"{look.boundary_p:.4f}", "method": look.method,
        "where": where, "at": f"{100 * look.boundary_fraction:.1f}"}
    if look.crossed is None:
        verdict = _("not assessable")
    elif look.crossed:
        verdict = _("boundary crossed")
    else:
        verdict = _("boundary not crossed")
    if look.reached is False:
        verdict += " " + _("(information not yet reached)")
    return InterimRow(look, information, statistic, boundary, verdict)


IMPUTATION_METHODS = {
    "first_day": gettext_lazy("Dates known to the month were imputed to the first day of the "
                              "month, and dates known to the year to 1 January, as the "
                              "protocol states."),
    "middle": gettext_lazy("Dates known to the month were imputed to the 15th, and dates known "
                           "to the year to 1 July, as the protocol states."),
    "last_day": gettext_lazy("Dates known to the month were imputed to the last day of the "
                             "month, and dates known to the year to 31 December, as the "
                             "protocol states."),
}


def imputation_methods(values: list) -> list[str]:
    """The sentence for each imputation rule an endpoint's values used (partial dates dated
    by the protocol's ``partial.impute``), with how many participants it concerns."""
    rules: dict[str, int] = {}
    for value in values:
        if value.imputed:
            rules[value.imputed] = rules.get(value.imputed, 0) + 1
    return [str(IMPUTATION_METHODS[rule]) + " " + ngettext(
        "(%(n)d participant's date.)", "(%(n)d participants' dates.)", n) % {"n": n}
        for rule, n in sorted(rules.items()) if rule in IMPUTATION_METHODS]


def _section(analysis: EndpointAnalysis) -> EndpointSection:
    landmarks = analysis.definition.get("landmarks", [])
    titles = [_("%(what)s at %(months)s months, exact %(level)s %% CI") % {
        "what": analysis.label, "months": f"{lm['months']:g}", "level": f"{100 * lm['level']:g}"}
        for lm in landmarks]
    rows = [EndpointRow(g.label, g.n, g.events, fmt_median(g),
                        [(fmt_landmark(r), "—" if r.km is None else f"{100 * r.km:.1f} %")
                         for r in g.landmarks])
            for g in analysis.groups]
    test = analysis.logrank
    logrank = None
    if test is not None:
        logrank = _("Log-rank test: chi-square %(chi2)s on %(df)s degree(s) of freedom, "
                    "p %(p)s") % {"chi2": f"{test.chi2:.2f}", "df": test.df, "p": fmt_p(test.p)}
        if analysis.strata:
            logrank += " " + _("(stratified by %(by)s)") % {"by": ", ".join(analysis.strata)}
    elif not analysis.pooled and len(analysis.groups) > 1:
        logrank = _("Log-rank test: not computable (no event while the arms were both at risk "
                    "in the same stratum).")
    ratios = [fmt_hazard_ratio(r) for r in analysis.hazard_ratios]
    return EndpointSection(analysis, titles, rows, logrank, ratios, analysis.methods)


# --------------------------------------------------------------------------- the read


def outcomes_for(user, trial: Trial) -> OutcomesView:
    """Everything the page and the report show to ``user`` (who holds ``Perm.VIEW_REPORTS``)."""
    sites = policy.sites_for(user, trial, policy.Perm.VIEW_REPORTS)
    arm_level = policy.can_see_comparisons(user, trial)
    arms = ([(code, f"{code} — {label}") for code, label in
             trial.arms.order_by("position").values_list("code", "label")] if arm_level else None)
    derived = endpoint_values.derive_endpoints(trial, sites=sites)
    sections = []
    analyses = {}
    for endpoint in endpoint_values.endpoint_definitions(trial):
        analysis = analyse(endpoint, derived[endpoint["code"]],
                           horizon=endpoint_values.horizon_of(trial, endpoint),
                           arms=arms, strata=endpoint_values.strata_of(trial, endpoint))
        section = _section(analysis)
        section.methods = section.methods + imputation_methods(derived[endpoint["code"]])
        sections.append(section)
        analyses[endpoint["code"]] = analysis
    arm_of = dict(Allocation.objects.filter(counted("participant__"), trial=trial,
                                            participant__site__in=sites)
                  .values_list("participant_id", "arm__code"))
    safety = _safety_tables(trial, arm_of, arms)
    closed = not arm_level and not policy.is_blinded_for(user, trial)
    interims = []
    if arm_level:
        interims = [_interim_row(look) for look in interim_looks(
            trial.definition.get("interim_analyses", []), analyses, randomised=len(arm_of),
            target=trial.target_enrolment)]
    return OutcomesView(trial, arm_level, len(arm_of), sections, safety, methods_text(),
                        closed=closed, interims=interims)


def _safety_tables(trial: Trial, arm_of: dict[int, str],
                   arms: list[tuple[str, str]] | None) -> list[SafetyTable]:
    spec = trial.definition.get("safety", {})
    ae, morbidity = spec.get("adverse_events"), spec.get("surgical_morbidity")
    codes = [s["crf"] for s in (ae, morbidity) if s]
    if not codes or not arm_of:
        return []
    data_of: dict[tuple[int, str], list[dict]] = {}
    for participant_id, crf_code, data in (
            CRFRecord.objects.filter(participant_id__in=list(arm_of), crf_code__in=codes,
                                     status__in=endpoint_values.ANALYSED_STATUSES)
            .values_list("participant_id", "crf_code", "data")):
        data_of.setdefault((participant_id, crf_code), []).append(data or {})

    groups = ([(code, label, [p for p, a in arm_of.items() if a == code]) for code, label in arms]
              if arms else [("all", _("All participants"), list(arm_of))])
    columns = [f"{label} (n={len(members)})" for _, label, members in groups]

    def cell(count: int, total: int) -> str:
        return f"{count} ({100 * count / total:.0f} %)" if total else "0"

    tables = []
    if ae:
        def worst(pid: int) -> int | None:
            crfs = [{"events": [{"grade": (row or {}).get(ae["grade"])}
                                for row in d.get(ae["group"]) or []]}
                    for d in data_of.get((pid, ae["crf"]), [])]
            return worst_ctcae_grade(crfs)

        grades = {pid: worst(pid) for pid in arm_of}
        rows = [(_("No adverse event graded"),
                 [cell(sum(1 for p in m if grades[p] is None), len(m)) for _, _, m in groups])]
        rows += [(_("Grade %(grade)s") % {"grade": g},
                  [cell(sum(1 for p in m if grades[p] == g), len(m)) for _, _, m in groups])
                 for g in (1, 2, 3, 4, 5)]
        rows.append((_("Grade 3 or worse"),
                     [cell(sum(1 for p in m if (grades[p] or 0) >= 3), len(m))
                      for _, _, m in groups]))
        tables.append(SafetyTable(
            _("Adverse events: participants by worst CTCAE v4.0 grade"), columns, rows,
            _("Each participant counted once, at the worst grade recorded on a completed "
              "adverse-event form.")))
    if morbidity:
        order = (NO_COMPLICATION,) + CLAVIEN_DINDO_ORDER

        def worst_cd(pid: int) -> str | None:
            found = [d.get(morbidity["field"]) for d in data_of.get((pid, morbidity["crf"]), [])]
            found = [g for g in found if g in order]
            return max(found, key=order.index) if found else None

        cd = {pid: worst_cd(pid) for pid in arm_of}
        assessed = [[p for p in m if cd[p] is not None] for _, _, m in groups]
        rows = [(_("Assessed"), [str(len(a)) for a in assessed])]
        rows += [(_("Grade %(grade)s") % {"grade": g} if g != NO_COMPLICATION
                  else _("Grade 0 (no complication)"),
                  [cell(sum(1 for p in a if cd[p] == g), len(a)) for a in assessed])
                 for g in order]
        tables.append(SafetyTable(
            _("Post-operative morbidity: worst Clavien-Dindo grade within 30 days"), columns,
            rows, _("Percentages of the participants assessed (those operated, within 30 "
                    "days of surgery).")))
    return tables
