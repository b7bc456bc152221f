"""The casebook of one participant: all their data on paper, for the sponsor's archive, an
inspection or the site's file at the end of the trial.

A cover page (trial, participant, site, protocol version, status, consent history and
withdrawals, and the treatment as the reader may see it: the arm only when
``trials.policy.can_see_arm`` allows, else the kit code), then every visit in order with each
form it expects, then the forms outside visits (eligibility, events). Each form shows its
answers (labels from the protocol version it was entered under, choices as their labels, units,
each group as a table), its signatures (who, when, meaning, still valid or not), its history
(each saved version: who, when, the reason, each answer's old and new value) and its data
queries with their conversation.

Built by the report queue (``reports.services``, kind ``casebook``) with the requester's rights
at build time. Every read is one of a fixed number of queries (``crfs.selectors.casebook_forms``
and the few below), whatever the number of visits and forms; timings in bench/README.md.
"""
from __future__ import annotations

import datetime as dt
from typing import BinaryIO, Callable
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (CondPageBreak, PageBreak, Paragraph, SimpleDocTemplate, Spacer,
                                Table, TableStyle)

from core.dates import shown_date, shown_instant

from crfs import trail
from crfs.forms import visible
from crfs.pdf import signature_line
from crfs.selectors import CasebookForm, casebook_forms
from patients.models import Participant, Visit
from patients.selectors import consent_overview
from randomisation.selectors import allocation_of, allocation_view
from trials.models import ProtocolVersion, Trial, definition_of

# Cells short enough for one line are plain strings (drawn in this font, far faster than a
# Paragraph: a casebook has thousands of cells); longer ones are wrapped Paragraphs.
FONT = [("FONTNAME", (0, 0), (-1, -1), "Helvetica"), ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("LEADING", (0, 0), (-1, -1), 10)]
GRID = TableStyle(FONT + [("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                          ("VALIGN", (0, 0), (-1, -1), "TOP"),
                          ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee"))])
ROWS = TableStyle(FONT + [("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                          ("VALIGN", (0, 0), (-1, -1), "TOP")])
PADDING = 12  # points: a cell's left and right padding (reportlab's default 6 + 6)
WIDTH = 180 * mm


def _name(user) -> str:
    if user is None:
        return _("the system")
    return user.get_full_name() or user.get_username()


def _when(instant: dt.datetime | None) -> str:
    return shown_instant(instant, zone=False, empty="—")


def _day(day: dt.date | None) -> str:
    return shown_date(day, empty="—")


class _Styles:
    def __init__(self):
        sheet = getSampleStyleSheet()
        self.title, self.h1, self.h2, self.h3 = (sheet["Title"], sheet["Heading1"],
                                                 sheet["Heading2"], sheet["Heading3"])
        self.body = sheet["BodyText"]
        self.small = sheet["BodyText"].clone("cb-small", fontSize=8, leading=10)
        self.muted = self.small.clone("cb-muted", textColor=colors.grey)

    def p(self, text, style=None) -> Paragraph:
        return Paragraph(escape(str(text)), style or self.small)

    def cell(self, text, width: float):
        """A table cell ``width`` points wide: the text itself when it fits on one line."""
        text = str(text)
        if "\n" not in text and stringWidth(text, "Helvetica", 8) <= width - PADDING:
            return text
        return self.p(text)


def build_casebook(trial: Trial, *, viewer, stream: BinaryIO,
                   progress: Callable[[int, str], None], participant: Participant) -> None:
    """Write the casebook of ``participant`` to ``stream`` as ``viewer`` may see it."""
    progress(5, _("Reading the participant's data"))
    participant = (Participant.objects.select_related("site", "trial", "protocol_version")
                   .get(pk=participant.pk))
    allocation = allocation_of(participant)
    treatment = allocation_view(viewer, allocation).treatment if allocation else None
    consent = consent_overview(participant)
    visits = list(Visit.objects.filter(participant=participant)
                  .order_by("target_date", "occurrence", "pk"))
    forms = casebook_forms(participant)
    versions = dict(ProtocolVersion.objects.filter(trial=trial).values_list("pk", "label"))
    progress(30, _("Laying out %(n)d forms") % {"n": len(forms)})

    st = _Styles()
    story = _cover(st, trial, participant, consent, allocation, treatment, viewer)
    by_visit: dict[int | None, list[CasebookForm]] = {}
    for form in forms:
        by_visit.setdefault(form.record.visit_id, []).append(form)
    definition = definition_of(participant.protocol_version_id)
    labels = {c["code"]: c["label"] for c in definition.get("crfs", [])}
    story.append(PageBreak())
    story.append(st.p(_("Visits"), st.h1))
    if not visits:
        story.append(st.p(_("No visit planned."), st.body))
    for visit in visits:
        story += _visit(st, visit, by_visit.get(visit.pk, []), labels, versions)
    outside = by_visit.get(None, [])
    story.append(CondPageBreak(60 * mm))
    story.append(st.p(_("Forms outside visits"), st.h1))
    if not outside:
        story.append(st.p(_("None entered."), st.body))
    for form in outside:
        story += _form(st, form, versions)

    printed = _("Casebook of %(id)s - %(trial)s - printed %(when)s by %(who)s") % {
        "id": participant.study_id, "trial": trial.short_title,
        "when": shown_instant(timezone.now()), "who": _name(viewer)}

    def on_page(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 8 * mm, f"{printed} - " + _("page %(n)d") % {"n": doc.page})
        canvas.restoreState()

    doc = SimpleDocTemplate(stream, pagesize=A4, invariant=1,
                            title=_("Casebook of %(id)s") % {"id": participant.study_id},
                            leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm)
    progress(60, _("Writing the PDF"))
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)


# --------------------------------------------------------------------------- cover


def _cover(st: _Styles, trial, participant, consent, allocation, treatment, viewer) -> list:
    story = [st.p(_("Casebook of %(id)s") % {"id": participant.study_id}, st.title),
             st.p(trial.title, st.body)]
    facts = [
        (_("Trial"), trial.short_title + (f" ({trial.registry_id})" if trial.registry_id else "")),
        (_("Participant study ID"), participant.study_id),
        (_("Site"), f"{participant.site.code} - {participant.site.name}"),
        (_("Protocol version"), participant.protocol_version.label),
        (_("Status"), participant.get_status_display()),
        (_("Screened on"), _day(participant.screened_on)),
    ]
    if allocation is not None:
        facts.append((_("Treatment"), treatment))
        facts.append((_("Randomised"), _when(allocation.randomised_at)))
    else:
        facts.append((_("Treatment"), _("not randomised")))
    facts.append((_("Printed for"), _name(viewer)))
    table = Table([[st.p(k, st.body), st.p(v, st.body)] for k, v in facts],
                  colWidths=[50 * mm, 130 * mm])
    table.setStyle(ROWS)
    story += [table, Spacer(1, 4 * mm), st.p(_("Consent history"), st.h2)]
    if consent.records:
        rows = [[st.p(h) for h in (_("Date"), _("Form version"), _("Kind"), _("Taken by"),
                                   _("Recorded"), _("Note"))]]
        for r in consent.records:
            note = _("corrected by a later record") if r.corrected else ""
            if r.reason:
                note = f"{note} {r.reason}".strip()
            rows.append([st.p(_day(r.consent_date)), st.p(r.version), st.p(r.get_kind_display()),
                         st.p(r.taken_by or "—"), st.p(_when(r.recorded_at)), st.p(note)])
        table = Table(rows, colWidths=[22 * mm, 22 * mm, 30 * mm, 32 * mm, 30 * mm, 44 * mm],
                      repeatRows=1)
        table.setStyle(GRID)
        story.append(table)
    else:
        story.append(st.p(_("No consent recorded."), st.body))
    story.append(st.p(_("Withdrawals"), st.h2))
    for w in consent.withdrawals:
        story.append(st.p(f"{_day(w.withdrawn_on)}: {w.get_level_display()} - {w.reason}",
                          st.body))
    if not consent.withdrawals:
        story.append(st.p(_("None."), st.body))
    return story


# --------------------------------------------------------------------------- visits and forms


def _visit(st: _Styles, visit: Visit, forms: list[CasebookForm], labels: dict,
           versions: dict) -> list:
    done = f", {_('done on')} {_day(visit.done_on)}" if visit.done_on else ""
    story = [CondPageBreak(40 * mm),
             st.p(f"{visit.title} - {_('target')} {_day(visit.target_date)}, "
                  f"{visit.get_status_display()}{done}", st.h2)]
    if visit.status_reason:
        story.append(st.p(visit.status_reason, st.body))
    entered = {f.record.crf_code for f in forms}
    missing = [code for code in visit.crfs or [] if code not in entered]
    for form in forms:
        story += _form(st, form, versions)
    for code in missing:
        story.append(st.p(_("%(form)s: not entered.") % {"form": labels.get(code, code)},
                          st.muted))
    if not forms and not missing:
        story.append(st.p(_("No form at this visit."), st.muted))
    return story


def _form(st: _Styles, form: CasebookForm, versions: dict) -> list:
    record, definition = form.record, form.definition
    story = [st.p(f"{definition.get('label', record.crf_code)} ({record.crf_code})", st.h3),
             st.p(_("Status: %(status)s. Protocol version %(version)s. Last saved %(when)s "
                    "by %(who)s.") % {
                 "status": record.get_status_display(),
                 "version": versions.get(record.protocol_version_id, "?"),
                 "when": _when(record.updated_at), "who": _name(record.updated_by)})]
    if record.locked_at:
        story.append(st.p(_("Locked %(when)s by %(who)s.") % {
            "when": _when(record.locked_at), "who": _name(record.locked_by)}))
    story += _answers(st, definition, record.data or {})
    story.append(st.p(_("Signatures"), st.body))
    for view in form.signatures:
        story.append(st.p(signature_line(view)))
    if not form.signatures:
        story.append(st.p(_("Not signed."), st.muted))
    story += _history(st, form)
    story += _queries(st, form)
    story.append(Spacer(1, 3 * mm))
    return story


def _answers(st: _Styles, definition: dict, data: dict) -> list:
    rows, groups = [], []
    for f in definition.get("fields", []):
        if not visible(f, data, definition["fields"]):
            continue
        value = data.get(f["code"])
        shown = trail.flatten(data).get(f["code"], value)  # a missing-data code, if any
        rows.append([st.cell(f["label"], 70 * mm),
                     st.cell(trail.display(definition, f["code"], shown), 110 * mm)])
        if f["type"] == "group" and value:
            groups.append(_group(st, definition, f, value))
    out = []
    if rows:
        table = Table(rows, colWidths=[70 * mm, 110 * mm])
        table.setStyle(ROWS)
        out.append(table)
    for group in groups:
        out += [Spacer(1, 2 * mm), group]
    if not rows:
        out.append(st.p(_("No answer."), st.muted))
    return out


def _group(st: _Styles, definition: dict, group: dict, rows: list) -> Table:
    subs = group["fields"]
    first = 12 * mm
    rest = (WIDTH - first) / max(1, len(subs))
    head = [st.p(f"{group['label']} #")] + [st.cell(sub["label"], rest) for sub in subs]
    body = []
    for i, row in enumerate(rows):
        line = [str(i + 1)]
        for sub in subs:
            path = f"{group['code']}[{i}].{sub['code']}"
            shown = visible(sub, row or {}, subs)
            value = trail.flatten(row or {}).get(sub["code"])  # a missing-data code, if any
            line.append(st.cell(trail.display(definition, path, value), rest) if shown else "")
        body.append(line)
    table = Table([head] + body, colWidths=[first] + [rest] * len(subs), repeatRows=1)
    table.setStyle(GRID)
    return table


def _history(st: _Styles, form: CasebookForm) -> list:
    widths = [8 * mm, 26 * mm, 28 * mm, 40 * mm, 26 * mm, 26 * mm, 26 * mm]
    out = [st.p(_("History"), st.body)]
    rows = [["#", _("Saved"), _("By"), st.cell(_("Answer"), widths[3]),
             st.cell(_("Old value"), widths[4]), st.cell(_("New value"), widths[5]),
             st.cell(_("Reason"), widths[6])]]
    for v in form.versions:
        reason = v.row.history_change_reason or ""
        what = _("created") if v.created else ""
        if v.status_change:
            what = (f"{what} " + _("status %(old)s to %(new)s") % {
                "old": v.status_change[0] or "—", "new": v.status_change[1]}).strip()
        head = [str(v.number), _when(v.row.history_date),
                st.cell(_name(v.row.history_user), widths[2])]
        if what or not v.changes:
            rows.append(head + [st.cell(what or _("no change of answers"), widths[3]), "", "",
                                st.cell(reason, widths[6])])
            head, reason = ["", "", ""], ""
        for c in v.changes:
            rows.append(head + [st.cell(c.label, widths[3]), st.cell(c.old, widths[4]),
                                st.cell(c.new, widths[5]), st.cell(reason, widths[6])])
            head, reason = ["", "", ""], ""
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(GRID)
    out.append(table)
    return out


def _queries(st: _Styles, form: CasebookForm) -> list:
    if not form.queries:
        return [st.p(_("Data queries: none."), st.muted)]
    out = [st.p(_("Data queries"), st.body)]
    for q in form.queries:
        out.append(st.p(f"#{q.pk} {q.field_label} - {q.get_status_display()}"
                        + (f" ({_('automatic')}: {q.check_code})" if q.automatic else "")))
        for m in q.thread:
            out.append(st.p(f"    {_when(m.at)} {_name(m.author)} {m.get_kind_display()}: "
                            f"{m.text}"))
    return out
