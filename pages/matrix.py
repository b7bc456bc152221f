"""The subject matrix page: a trial's participants by their visits' forms, each cell a link to
the form (or to start it at that visit). Reads from ``reports.matrix``; the filters are a GET
form, checked like any other (a bad value is a 400 naming the filter)."""
from __future__ import annotations

from urllib.parse import quote, urlencode

from django import forms
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from crfs.form_states import FILTER_STATES, LABELS, LEGEND, SYMBOLS, FormState
from patients.models import Status
from reports import matrix
from trials import policy
from trials.selectors import get_trial_for


class MatrixFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=32, label=_("Study ID"))
    site = forms.ChoiceField(required=False, label=_("Site"))
    status = forms.ChoiceField(required=False, label=_("Participant status"),
                               choices=[("", _("Any"))] + list(Status.choices))
    visit = forms.ChoiceField(required=False, label=_("Visit"))
    state = forms.ChoiceField(required=False, label=_("Form state"),
                              choices=[("", _("Any"))] + [(s, LABELS[s]) for s in FILTER_STATES])
    visits = forms.IntegerField(required=False, min_value=1, max_value=10_000,
                                widget=forms.HiddenInput, label=_("Visits page"))
    after = forms.CharField(required=False, max_length=32, widget=forms.HiddenInput)
    before = forms.CharField(required=False, max_length=32, widget=forms.HiddenInput)

    def __init__(self, data, *, sites, visits):
        super().__init__(data)
        self.sites = {s.code: s for s in sites}
        self.fields["site"].choices = [("", _("All my sites"))] + [(c, c) for c in self.sites]
        self.fields["visit"].choices = [("", _("All visits"))] + visits
        for name in ("site", "status", "visit", "state"):
            self.fields[name].error_messages["invalid_choice"] = _(
                "%(value)s is not one of the choices.")

    def filters(self) -> matrix.Filters:
        data = self.cleaned_data
        return matrix.Filters(site=self.sites.get(data["site"]), status=data["status"],
                              visit=data["visit"], state=data["state"],
                              search=data["q"].strip())


def _cell_links(slug: str, page: matrix.Matrix) -> None:
    """Each cell's link: the form at its visit, or outside visits. Built from one reversed
    prefix rather than a ``reverse`` per cell (thousands a page); tests compare them with
    ``reverse``."""
    base = reverse("participant_list", args=[slug])
    for row in page.rows:
        prefix = f"{base}{quote(row.study_id, safe='')}/"
        for cell in row.cells:
            if cell.state is None:
                cell.url = ""
            elif cell.visit_id is None:
                cell.url = f"{prefix}crf/{cell.column.crf_code}/"
            else:
                cell.url = f"{prefix}visits/{cell.visit_id}/crf/{cell.column.crf_code}/"


def _cells_html(page: matrix.Matrix) -> None:
    """Each row's cells as one piece of HTML (``row.cells_html``).

    A page holds thousands of cells (25 participants by fifty visits' forms): a template loop
    spent most of the page's time on them (bench/README.md, "Subject matrix"), so the cells,
    alike but for their state and link, are written here, every text escaped. The rest of the
    page is the template's."""
    query_mark = format_html('<span class="fs-q">?<span class="sr-only"> {}</span></span>',
                             LABELS[FormState.QUERY])
    verified_mark = format_html('<span class="fs-v">☑<span class="sr-only"> {}</span></span>',
                                LABELS[FormState.VERIFIED])
    titles: dict[tuple[str, str], str] = {}
    for row in page.rows:
        parts = []
        for cell in row.cells:
            if cell.state is None:
                parts.append('<td class="fs-none"></td>')
                continue
            key = (cell.column.crf_code, cell.state)
            inner = titles.get(key)
            if inner is None:
                inner = titles[key] = format_html(
                    '" title="{}: {}">{}<span class="sr-only"> {}</span>',
                    cell.column.crf_label, LABELS[cell.state], SYMBOLS[cell.state],
                    LABELS[cell.state])
            queried = " fs-has-query" if cell.open_queries else ""
            # A signed or locked form verified against the source: its state and the mark.
            extra = verified_mark if cell.verified and cell.state != FormState.VERIFIED else ""
            parts.append(f'<td class="fs fs-{cell.state}{queried}"><a href="{escape(cell.url)}'
                         f'{inner}{extra}{query_mark if cell.open_queries else ""}</a></td>')
        row.cells_html = mark_safe("".join(parts))  # noqa: S308 - every part escaped above


def subject_matrix(request, slug: str):
    trial = get_trial_for(request.user, slug, policy.Perm.VIEW_PARTICIPANTS)
    sites = list(policy.sites_for(request.user, trial).order_by("code"))
    form = MatrixFilterForm(request.GET, sites=sites,
                            visits=matrix.visit_choices(request.user, trial))
    if not form.is_valid():
        return render(request, "outcomes/subject_matrix.html",
                      {"trial": trial, "form": form, "page": None, "legend": _legend()},
                      status=400)
    filters = form.filters()
    page = matrix.subject_matrix(request.user, trial, filters,
                                 after=form.cleaned_data["after"],
                                 before=form.cleaned_data["before"],
                                 visit_page=form.cleaned_data["visits"] or 1)
    _cell_links(slug, page)
    _cells_html(page)
    kept = urlencode({k: v for k, v in (("q", filters.search), ("site", form.cleaned_data["site"]),
                                        ("status", filters.status), ("visit", filters.visit),
                                        ("state", filters.state)) if v})
    # Where the rows start, for the links to other visits of the same participants.
    position = urlencode({k: form.cleaned_data[k] for k in ("after", "before")
                          if form.cleaned_data[k]})
    return render(request, "outcomes/subject_matrix.html", {
        "trial": trial, "form": form, "page": page, "legend": _legend(), "kept": kept,
        "position": position,
        "multi_site": len(sites) > 1,
    })


def _legend() -> list[tuple[str, str, str]]:
    return [(state, SYMBOLS[state], LABELS[state]) for state in LEGEND]

