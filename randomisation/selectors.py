"""Reads of allocations, already shaped for who is asking (arm or kit code)."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count
from django.http import Http404
from django.utils.translation import gettext as _

from crfs.eligibility import ELIGIBILITY_CRF, ReadyState, ready_state
from crfs.models import CRFRecord
from patients.models import Participant, Status
from supply.models import Kit, KitList
from trials import policy
from trials.models import Trial
from trials.policy import Perm

from .models import Allocation, AllocationList, EmergencyAllocation, Stratum


@dataclass(frozen=True)
class AllocationView:
    """What one user may see of one allocation: the arm, or only the kit code."""

    allocation: Allocation
    arm_visible: bool

    @property
    def treatment(self) -> str:
        """In the active language: read where it is shown (page, PDF), never stored."""
        kit = self.allocation.kit_code
        if self.arm_visible:
            arm = self.allocation.arm
            names = {"code": arm.code, "label": arm.label, "kit": kit}
            if kit:
                return _("%(code)s — %(label)s (kit %(kit)s)") % names
            return f"{arm.code} — {arm.label}"  # no words: nothing to translate
        return _("Kit %(kit)s") % {"kit": kit}

    @property
    def unblinded(self) -> bool:
        return self.allocation.unblindings.exists()


def allocation_view(user, allocation: Allocation) -> AllocationView:
    return AllocationView(allocation, policy.can_see_arm(user, allocation))


def allocation_of(participant) -> Allocation | None:
    try:
        # ``in_error``, ``emergency``: the randomised-in-error flag and the emergency
        # allocation's record, if any, in the same query.
        return Allocation.objects.select_related("arm", "trial", "randomised_by", "in_error",
                                                 "emergency").get(participant=participant)
    except Allocation.DoesNotExist:
        return None


def require_statistician(user, trial: Trial) -> None:
    """Allocation lists and the balance report exist only for the unblinded statistician:
    everyone else gets 404, as if the page did not exist."""
    if not policy.has_perm(user, Perm.MANAGE_ALLOCATION, trial):
        raise Http404("No such page.")


def emergency_allocations_for(trial: Trial):
    """The emergency allocations recorded in ``trial``, newest first (statistician's page)."""
    return (EmergencyAllocation.objects.filter(allocation__trial=trial)
            .select_related("allocation__participant", "allocation__slot__stratum",
                            "recorded_by").order_by("-recorded_at", "-pk"))


def lists_for(trial: Trial):
    return (AllocationList.objects.filter(trial=trial)
            .select_related("created_by", "sealed_by")
            .annotate(n_allocations=Count("allocations"))
            .order_by("-number"))


def kit_lists_for(trial: Trial) -> list[KitList]:
    """The trial's kit lists, newest first, each with its kit count and ``per_arm`` ((arm code,
    kits) in the arms' order): unblinded, for the statistician's page only. Three queries."""
    lists = list(KitList.objects.filter(trial=trial).select_related("created_by", "sealed_by")
                 .annotate(n_kits=Count("kits")).order_by("-number"))
    counts: dict[int, dict[str, int]] = {}
    for list_id, arm, n in (Kit.objects.filter(kit_list__in=lists).order_by()
                            .values("kit_list_id", "arm__code").annotate(n=Count("pk"))
                            .values_list("kit_list_id", "arm__code", "n")):
        counts.setdefault(list_id, {})[arm] = n
    arms = list(trial.arms.order_by("position").values_list("code", flat=True))
    for kit_list in lists:
        kit_list.per_arm = [(arm, counts.get(kit_list.pk, {}).get(arm, 0)) for arm in arms]
    return lists


def strata_of(alist: AllocationList):
    return Stratum.objects.filter(allocation_list=alist).order_by("key")


@dataclass(frozen=True)
class BalanceRow:
    stratum: str
    counts: dict[str, int]
    imbalance: int


def balance_report(trial: Trial) -> tuple[list[str], list[BalanceRow], dict[str, int], int]:
    """Counts per arm per stratum and the largest imbalance (max − min count within a stratum,
    after dividing by each arm's ratio)."""
    arms = list(trial.arms.all())
    rows: dict[str, dict[str, int]] = {}
    for row in (Allocation.objects.filter(trial=trial).values("stratum_key", "arm__code")
                .annotate(n=Count("pk"))):
        rows.setdefault(row["stratum_key"], {})[row["arm__code"]] = row["n"]
    out = []
    totals = {a.code: 0 for a in arms}
    for key in sorted(rows):
        counts = {a.code: rows[key].get(a.code, 0) for a in arms}
        for code, n in counts.items():
            totals[code] += n
        scaled = [counts[a.code] / a.ratio for a in arms]
        out.append(BalanceRow(key, counts, round(max(scaled) - min(scaled))))
    largest = max((r.imbalance for r in out), default=0)
    return [a.code for a in arms], out, totals, largest


# --------------------------------------------------------------------------- to randomise


@dataclass(frozen=True)
class Candidate:
    """A screened participant not yet randomised, and where they stand
    (``crfs.eligibility.ReadyState``): the coordinator's "to randomise" list."""

    participant: Participant
    state: str

    @property
    def label(self) -> str:
        return {
            ReadyState.INCOMPLETE: _("consent or eligibility form to complete"),
            ReadyState.NOT_ELIGIBLE: _("criteria not met"),
            ReadyState.AWAITING_CONFIRMATION: _("awaiting investigator's confirmation"),
            ReadyState.READY: _("ready to randomise"),
        }[self.state]


def to_randomise(user, trial: Trial, *, site=None) -> list[Candidate]:
    """Participants screened and not yet randomised at the sites ``user`` may see, each with
    their state: consent or eligibility to complete, criteria not met, awaiting an
    investigator's confirmation (where the protocol asks for it), or ready to randomise.
    Three queries whatever their number: participants, eligibility records, signatures."""
    participants = (Participant.objects.filter(trial=trial, status=Status.SCREENED)
                    .filter(policy.site_filter(user, trial)).select_related("site")
                    .order_by("screened_on", "study_id"))
    if site is not None:
        participants = participants.filter(site=site)
    participants = list(participants)
    records = {r.participant_id: r for r in CRFRecord.objects.filter(
        participant__in=participants, crf_code=ELIGIBILITY_CRF, visit=None)
        .prefetch_related("signatures")}
    rows = []
    for p in participants:
        p.trial = trial
        record = records.get(p.pk)
        if record is not None:
            record.participant = p
        rows.append(Candidate(p, ready_state(p, record)))
    return rows
