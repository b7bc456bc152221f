"""Reads of trials, already restricted to what the asking user may see."""
from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.http import Http404

from . import policy
from .models import Term, Terminology, Trial


def get_trial_for(user, slug: str, perm: policy.Perm = policy.Perm.VIEW_TRIAL) -> Trial:
    """The trial, or 404 when it does not exist or the user has no part in it; 403 when they
    have a part in it but their role lacks ``perm`` (they may see the trial, not do this), as
    the API answers."""
    trial = policy.visible_trial(user, slug)
    if trial is None or not policy.has_perm(user, policy.Perm.VIEW_TRIAL, trial):
        raise Http404("No such trial.")
    if not policy.has_perm(user, perm, trial):
        raise PermissionDenied
    return trial


# --- terminologies (trials/terminology.py) -------------------------------------------------------

@dataclass(frozen=True)
class TermInfo:
    meddra_code: str
    soc: str
    label: str
    definition: str
    grades: dict  # "1".."5" -> definition, only the grades the term has

    @property
    def grade_numbers(self) -> list[int]:
        return sorted(int(g) for g in self.grades)


@dataclass
class TermList:
    """The terms of one loaded terminology, looked up by label (any case) or MedDRA code."""
    code: str
    name: str
    digest: str
    terms: list[TermInfo]

    def __post_init__(self):
        self._by_key = {t.label.casefold(): t for t in self.terms}
        self._by_key.update({t.meddra_code: t for t in self.terms})

    def find(self, text) -> TermInfo | None:
        """The term written ``text`` (its label in any case, or its MedDRA code), or None."""
        return self._by_key.get(str(text or "").strip().casefold())

    def by_soc(self) -> list[tuple[str, list[TermInfo]]]:
        groups: dict[str, list[TermInfo]] = {}
        for t in self.terms:
            groups.setdefault(t.soc, []).append(t)
        return list(groups.items())


_TERM_LISTS: dict[tuple[str, str], TermList] = {}


def term_list(code: str) -> TermList | None:
    """The loaded terminology ``code``, or None when it was never loaded (``load_ctcae``).

    One small query per call to learn the digest; the terms themselves are read once per
    process and per content."""
    row = Terminology.objects.filter(code=code).values_list("pk", "name", "digest").first()
    if row is None:
        return None
    pk, name, digest = row
    found = _TERM_LISTS.get((code, digest))
    if found is None:
        terms = [TermInfo(*values) for values in Term.objects.filter(terminology_id=pk)
                 .order_by("order").values_list("meddra_code", "soc", "label", "definition",
                                                "grades")]
        found = TermList(code, name, digest, terms)
        if len(_TERM_LISTS) > 16:
            _TERM_LISTS.clear()
        _TERM_LISTS[(code, digest)] = found
    return found
