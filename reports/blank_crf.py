"""Blank CRFs of a protocol version, on paper: one form or all of them in one PDF.

Two variants, read from the protocol version alone (no participant data, no arm):

- *annotated* (the data manager's annotated CRF): each question with its field code, type,
  unit, range, decimals, length, each choice with its code, the condition that shows it
  (``show_if`` / ``required_if`` as written), whether it is required, and the forms' visits;
- *plain* (for the sites' source documents): the same questions without codes, with boxes to
  tick and lines to write on, and the conditions in words ("Answer only if …").

Built while the reader waits: a protocol version's forms fit in a few dozen pages.
"""
from __future__ import annotations

from typing import BinaryIO
from xml.sax.saxutils import escape

from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.dates import shown_date
from crfs.forms import describe
from crfs.missing_data import CODE_LABELS, allowed_codes, reason_rule
from trials.models import ProtocolVersion, Trial, definition_of

VARIANTS = ("annotated", "plain")
ALL = "all"
GRID = TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                   ("VALIGN", (0, 0), (-1, -1), "TOP"),
                   ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee"))])
BLANK_GROUP_ROWS = 5  # rows printed for a group whose protocol sets no maximum


def version_of(trial: Trial, number: int) -> ProtocolVersion:
    """The protocol version ``number`` of ``trial``; ``Http404`` naming the versions there are."""
    version = trial.versions.filter(number=number).first()
    if version is None:
        numbers = ", ".join(str(n) for n in trial.versions.order_by("number")
                            .values_list("number", flat=True))
        raise Http404(_("No protocol version %(n)s in this trial; its versions are: "
                        "%(numbers)s.") % {"n": number, "numbers": numbers})
    return version


def forms_of(version: ProtocolVersion, crf_code: str) -> list[dict]:
    """The forms to print: one (``crf_code``) or every form (``all``); ``Http404`` naming the
    forms of the version for an unknown one."""
    crfs = definition_of(version.pk).get("crfs", [])
    if crf_code == ALL:
        return crfs
    found = [c for c in crfs if c["code"] == crf_code]
    if not found:
        raise Http404(_("No form %(code)s in protocol version %(version)s; its forms are: "
                        "%(codes)s.") % {"code": repr(crf_code), "version": version.label,
                                         "codes": ", ".join(c["code"] for c in crfs)})
    return found


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise Http404(_("No blank CRF variant %(variant)s: choose annotated or plain.") % {
            "variant": repr(variant)})


class _Writer:
    def __init__(self, definition: dict, annotated: bool):
        sheet = getSampleStyleSheet()
        self.title, self.h2 = sheet["Title"], sheet["Heading2"]
        self.body = sheet["BodyText"]
        self.small = sheet["BodyText"].clone("blank-small", fontSize=8, leading=10)
        self.annotated = annotated
        self.definition = definition

    def p(self, text, style=None) -> Paragraph:
        return Paragraph(escape(str(text)), style or self.small)

    def visits_of(self, code: str) -> list[str]:
        return [v.get("label", v["code"]) + (f" ({v['code']})" if self.annotated else "")
                for v in self.definition.get("visits", []) if code in v.get("crfs", [])]

    # ------------------------------------------------------------------ one field
    def type_text(self, f: dict) -> str:
        parts = [f["type"]]
        if f.get("terminology"):
            parts[0] += f" ({f['terminology']})"
        if f.get("unit"):
            parts.append(_("unit: %(unit)s") % {"unit": f["unit"]})
        if "min" in f or "max" in f:
            parts.append(_("range: %(min)s to %(max)s") % {"min": f.get("min", "…"),
                                                            "max": f.get("max", "…")})
        if "decimals" in f:
            parts.append(_("decimals: %(n)s") % {"n": f["decimals"]})
        if f.get("max_length"):
            parts.append(_("at most %(n)s characters") % {"n": f["max_length"]})
        if f.get("not_in_future"):
            parts.append(_("not in the future"))
        if f.get("derived"):
            parts.append(_("derived: %(how)s") % {"how": f["derived"]})
        if f.get("missing"):
            parts.append(_("missing-data codes: %(codes)s (reason: %(reason)s)") % {
                "codes": ", ".join(f["missing"]["codes"]), "reason": reason_rule(f)})
        if f.get("partial"):
            parts.append(_("partial date: %(precision)s (impute: %(impute)s)") % {
                "precision": f["partial"]["precision"],
                "impute": f["partial"].get("impute", "—")})
        return "; ".join(parts)

    def choices_text(self, f: dict) -> str:
        if f["type"] == "yesno":
            return ("true = " + _("Yes") + "; false = " + _("No")) if self.annotated \
                else f"[ ] {_('Yes')}   [ ] {_('No')}"
        choices = f.get("choices", [])
        if self.annotated:
            return "; ".join(f"{c['code']} = {c['label']}" for c in choices)
        return "   ".join(f"[ ] {c['label']}" for c in choices)

    def condition(self, f: dict, siblings: list[dict]) -> str:
        """``show_if`` / ``required_if``: the expressions as written (annotated), or in words."""
        parts = []
        for key in ("show_if", "required_if"):
            text = f.get(key)
            if not text or (key == "required_if" and f.get("required")):
                continue
            if self.annotated:
                parts.append(f"{key}: {text}")
            elif key == "show_if":
                parts.append(_("Answer only if %(condition)s.") % {
                    "condition": describe(text, siblings)})
            else:
                parts.append(_("Required if %(condition)s.") % {
                    "condition": describe(text, siblings)})
        return " ".join(parts)

    def answer_space(self, f: dict) -> str:
        if f.get("derived"):
            return _("(calculated: not to be filled in)")
        return self.value_space(f) + "".join(
            f"   [ ] {CODE_LABELS[code]} ({code})" for code in allowed_codes(f))

    def value_space(self, f: dict) -> str:
        if f["type"] in ("choice", "multichoice", "yesno"):
            return self.choices_text(f)
        if f["type"] == "date":
            if f.get("partial"):
                return "__ __ / __ __ / __ __ __ __ " + (
                    _("(the day may be left blank)") if f["partial"]["precision"] == "month"
                    else _("(the day and month may be left blank)"))
            return "__ __ / __ __ / __ __ __ __"
        unit = f" {f['unit']}" if f.get("unit") else ""
        return "________________" + unit

    # ------------------------------------------------------------------ one form
    def form(self, crf: dict) -> list:
        code = f" ({crf['code']})" if self.annotated else ""
        story = [self.p(f"{crf['label']}{code}", self.title)]
        visits = self.visits_of(crf["code"])
        story.append(self.p(_("Visits: %(visits)s") % {"visits": ", ".join(visits)} if visits
                            else _("Not tied to a visit (filled in when the event occurs)."),
                            self.body))
        if self.annotated:
            story.append(self.p(_("* required. Codes as stored and exported (CSV, CDISC ODM)."),
                                self.small))
        else:
            story.append(self.p(_("Study ID: ____________   Date: __ __ / __ __ / __ __ __ __   "
                                  "Initials of the person filling in: ______   * required"),
                                self.body))
        story.append(Spacer(1, 3 * mm))
        fields = crf.get("fields", [])
        story.append(self.table(fields))
        for group in [f for f in fields if f["type"] == "group"]:
            story += [Spacer(1, 3 * mm)] + self.group(group)
        if self.annotated and crf.get("checks"):
            story += [Spacer(1, 2 * mm), self.p(_("Edit checks"), self.body)]
            for check in crf["checks"]:
                when = f"when {check['when']}: " if check.get("when") else ""
                story.append(self.p(f"{check['code']} ({check.get('severity', 'hard')}): "
                                    f"{when}expect {check['expect']}", self.small))
        return story

    def annotated_row(self, code: str, f: dict, siblings: list[dict], *,
                      indent: bool = False) -> list:
        cell = [self.p(("- " if indent else "") + self.question(f))]
        if f["type"] in ("choice", "multichoice", "yesno"):
            cell.append(self.p(self.choices_text(f)))
        cond = self.condition(f, siblings)
        if cond:
            cell.append(self.p(cond))
        return [self.p(code), cell, self.p(self.type_text(f))]

    def question(self, f: dict) -> str:
        return f["label"] + (" *" if f.get("required") else "")

    def table(self, fields: list[dict]) -> Table:
        if self.annotated:
            rows = [[self.p(h) for h in (_("Code"), _("Question, choices and condition"),
                                         _("Type"))]]
            for f in fields:
                rows.append(self.annotated_row(f["code"], f, fields))
                for sub in f.get("fields", []):
                    rows.append(self.annotated_row(f"{f['code']}[].{sub['code']}", sub,
                                                   f["fields"], indent=True))
            widths = [50 * mm, 84 * mm, 46 * mm]
        else:
            rows = [[self.p(h) for h in (_("Question"), _("Answer"))]]
            for f in fields:
                cond = self.condition(f, fields)
                question = [self.p(self.question(f))] + ([self.p(cond)] if cond else [])
                answer = (_("see the table below") if f["type"] == "group"
                          else self.answer_space(f))
                rows.append([question, self.p(answer)])
            widths = [80 * mm, 100 * mm]
        table = Table(rows, colWidths=widths, repeatRows=1)
        table.setStyle(GRID)
        return table

    def group(self, group: dict) -> list:
        """A repeating group: its heading, a table of empty rows (a column per question) and,
        on the plain form, each column's choices and condition in words."""
        subs = group["fields"]
        label = group["label"] + (f" ({group['code']})" if self.annotated else "")
        head = ["#"] + [self.p(self.question(s) + (f" ({s['code']})" if self.annotated else ""))
                        for s in subs]
        n = min(group.get("max_rows", BLANK_GROUP_ROWS), 20)
        rows = [[str(i + 1)] + ["" for _s in subs] for i in range(n)]
        width = 180 * mm - 8 * mm
        table = Table([head] + rows, colWidths=[8 * mm] + [width / len(subs)] * len(subs),
                      rowHeights=[None] + [9 * mm] * n, repeatRows=1)
        table.setStyle(GRID)
        out = [self.p(label, self.h2)]
        if not self.annotated:  # what to write in each column, above the table
            for sub in subs:
                notes = []
                if sub["type"] in ("choice", "multichoice", "yesno"):
                    notes.append(self.choices_text(sub))
                elif sub.get("unit"):
                    notes.append(_("unit: %(unit)s") % {"unit": sub["unit"]})
                cond = self.condition(sub, subs)
                if cond:
                    notes.append(cond)
                if notes:
                    out.append(self.p(f"{sub['label']}: " + "   ".join(notes)))
        return out + [Spacer(1, 2 * mm), table]


def build_blank_crf(trial: Trial, version: ProtocolVersion, crfs: list[dict], *,
                    annotated: bool, stream: BinaryIO) -> None:
    """Write the blank forms ``crfs`` of ``version`` to ``stream``."""
    writer = _Writer(definition_of(version.pk), annotated)
    kind = _("Annotated CRF") if annotated else _("Blank CRF")
    footer = (f"{trial.short_title} - " + _("protocol version %(version)s") % {
        "version": version.label} + f" - {kind} - "
        + _("printed %(when)s") % {"when": shown_date(timezone.localdate())})

    def on_page(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 8 * mm, f"{footer} - " + _("page %(n)d") % {"n": doc.page})
        canvas.restoreState()

    story: list = []
    for i, crf in enumerate(crfs):
        if i:
            story.append(PageBreak())
        story += writer.form(crf)
    doc = SimpleDocTemplate(stream, pagesize=A4, invariant=1, title=f"{trial.short_title} {kind}",
                            leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm)
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
