"""The CDISC ODM 1.3.2 export of a trial: study metadata and clinical data with audit records,
written as a stream of text chunks (never a tree in memory).

One ``Snapshot`` file (``ODMVersion="1.3.2"``), elements in the order of the ODM 1.3.2 schema
(``tests/outcomes/test_odm.py`` validates it against CDISC's XSD):

- ``Study``: ``GlobalVariables``; ``BasicDefinitions`` (the units of the CRF fields);
  one ``MetaDataVersion`` named after the current protocol version, holding every CRF field that
  any version had (as the CSV exports do): ``Protocol`` with a ``StudyEventRef`` per visit;
  ``StudyEventDef`` per protocol visit (``Repeating="Yes"`` for repeated visits, the visit's
  occurrence is the ``StudyEventRepeatKey``), plus unscheduled visits and the forms outside
  visits (eligibility, events, the allocation); ``FormDef`` per CRF; ``ItemGroupDef`` per CRF
  (its plain fields) and per repeating group (``Repeating="Yes"``); ``ItemDef`` with its
  ``DataType``, question, unit and range; ``CodeList`` per choice field.
- ``AdminData``: users as pseudonymous OIDs (``USR.<id>``, no name), sites as ``Location``.
- ``ClinicalData``: ``SubjectData`` per participant (``SubjectKey`` = study ID, ``SiteRef``),
  ``StudyEventData``, ``FormData``, ``ItemGroupData``, ``ItemData``. Each form and each value
  carries the ``AuditRecord`` of its last change, read from the field-level history (who, at
  which site, when, and the reason once the CRF had been completed). ODM 1.3.2 allows one audit
  record per element in a snapshot; every earlier version stays on the CRF's History page.

Values as in the CSV exports (``reports.exports.value_text``): yes/no as 1/0 (``boolean``),
multiple choices as codes joined with ``|`` (``text``: ODM 1.3.2 has no multi-select item).
A date field the protocol allows to be partial is ``DataType="partialDate"`` (values such as
``2019-03``). An answer given as a missing-data code follows ODM 1.3's conventions for a null
value: ``<ItemData IsNull="Yes">`` without ``Value``, carrying an ``Annotation`` whose ``Flag``
has the code as ``FlagValue`` (code list ``CL.MISSING``: ND, NA, UNK, declared in the
metadata) and ``FlagType`` ``MISSING`` (code list ``CL.FLAGTYPE``), and the reason, when one
was given, as its ``Comment``.

Blinding: for a blinded reader the allocation form has the kit code and randomisation time
only: no arm ``ItemDef``, no arm ``CodeList``, and the arm is never selected from the database.
Pseudonymisation and site scope as in ``reports.exports``.

Queries: a fixed number whatever the size of the trial (version ids, visits' definitions,
users, sites, then one cursor over the records and one over their history, merged in order).
"""
from __future__ import annotations

import datetime as dt
import io
from typing import Iterator
from xml.sax.saxutils import escape, quoteattr

from django.db.models import F
from django.utils import timezone, translation

from crfs import trail
from crfs.missing_data import CODE_LABELS, coded
from crfs.models import CRFRecord
from patients.models import counted
from safety import services as safety_services
from safety.models import SAEReport
from trials import policy
from trials.models import ProtocolVersion, Trial, definition_of
from trials.policy import Perm
from trials.protocol import languages_of

from . import safety_listing
from .exports import (CHUNK_SIZE, FLUSH_AT, CRFLayout, answer, scoped_records, trial_layouts,
                      value_text)

NS = "http://www.cdisc.org/ns/odm/v1.3"
SE_NO_VISIT = "SE.NOVISIT"
SE_UNSCHEDULED = "SE.UNSCHEDULED"
F_ALLOCATION = "F.ALLOCATION"
F_SAE = "F.SAE"
SYSTEM_USER = "USR.SYSTEM"
DATA_TYPES = {"integer": "integer", "decimal": "float", "date": "date", "choice": "text",
              "multichoice": "text", "yesno": "boolean", "text": "text",
              "term": "text", "meddra": "text"}


def _attrs(**attrs) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in attrs.items() if v is not None)


def _open(name: str, **attrs) -> str:
    return f"<{name}{_attrs(**attrs)}>"


def _el(name: str, text: str | None = None, **attrs) -> str:
    if text is None:
        return f"<{name}{_attrs(**attrs)}/>"
    return f"<{name}{_attrs(**attrs)}>{escape(text)}</{name}>"


def _translated(name: str, text: str, language: str) -> str:
    return (f'<{name}><TranslatedText xml:lang={quoteattr(language)}>{escape(text)}'
            f'</TranslatedText></{name}>')


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _choice_type(field: dict) -> str:
    return "integer" if all(isinstance(c["code"], int) and not isinstance(c["code"], bool)
                            for c in field["choices"]) else "text"


CL_MISSING, CL_FLAGTYPE = "CL.MISSING", "CL.FLAGTYPE"


def data_type(field: dict) -> str:
    if field["type"] == "choice":
        return _choice_type(field)
    if field["type"] == "date" and field.get("partial"):
        return "partialDate"
    return DATA_TYPES[field["type"]]


# --------------------------------------------------------------------------- OIDs


def form_oid(crf: str) -> str:
    return f"F.{crf}"


def group_oid(crf: str, group: str | None = None) -> str:
    return f"IG.{crf}.{group}" if group else f"IG.{crf}"


def item_oid(crf: str, code: str, group: str | None = None) -> str:
    return f"IT.{crf}.{group}.{code}" if group else f"IT.{crf}.{code}"


def event_oid(visit_code: str | None, unscheduled: bool = False) -> str:
    if visit_code is None:
        return SE_NO_VISIT
    return SE_UNSCHEDULED if unscheduled else f"SE.V.{visit_code}"


# --------------------------------------------------------------------------- metadata


def _visits(trial: Trial) -> list[dict]:
    """Every visit any protocol version of the trial defines, the current version's first."""
    visits: dict[str, dict] = {}
    for version_id in (ProtocolVersion.objects.filter(trial=trial).order_by("-number")
                       .values_list("pk", flat=True)):
        for visit in definition_of(version_id, first_language=True).get("visits", []):
            visits.setdefault(visit["code"], visit)
    return list(visits.values())


class _Allocation:
    """The synthetic allocation form: randomisation time, kit code, and the arm only for a
    reader who may see arms."""

    def __init__(self, trial: Trial, *, blinded: bool):
        self.show_arm = not blinded
        self.show_kit = trial.masking != "open"
        self.arms = (list(trial.arms.order_by("position").values_list("code", "label"))
                     if self.show_arm else [])

    def items(self) -> list[tuple[str, str, str, str | None]]:
        """(OID, name, DataType, CodeList OID)."""
        out = [("IT.ALLOCATION.RANDOMISED_AT", "randomised_at", "datetime", None)]
        if self.show_arm:
            out.append(("IT.ALLOCATION.ARM", "arm", "text", "CL.ALLOCATION.ARM"))
        if self.show_kit:
            out.append(("IT.ALLOCATION.KIT_CODE", "kit_code", "text", None))
        # "yes" when the randomisation was recorded as in error: the participant stays in the
        # arm allocated (intention to treat), flagged.
        out.append(("IT.ALLOCATION.RANDOMISED_IN_ERROR", "randomised_in_error", "text", None))
        return out


class _SAE:
    """The synthetic SAE form (the line listing, ``reports.safety_listing``): one repeat of
    ``IG.SAE`` per SAE report of the participant, outside visits; never an arm. Read once (SAE
    reports are few), the reader's sites only."""

    def __init__(self, user, trial: Trial):
        self.columns = [c for c in safety_listing.header(trial) if c not in ("study_id", "site")]
        self.by_participant: dict[int, list[list[str]]] = {}
        codes = [p["code"] for p in safety_services.products(trial)]
        reports = (SAEReport.objects.filter(counted("participant__"), trial=trial)
                   .filter(policy.site_filter(user, trial, Perm.EXPORT_DATA,
                                              field="participant__site"))
                   .select_related("participant__site", "source_record", "assessment")
                   .prefetch_related("versions").order_by("pk"))
        for report in reports:
            cells = safety_listing.row(report, codes)
            self.by_participant.setdefault(report.participant_id, []).append(
                [c for c, name in zip(cells, safety_listing.header(trial))
                 if name not in ("study_id", "site")])

    def oid(self, column: str) -> str:
        return f"IT.SAE.{column.upper()}"

    def form(self, participant_id: int) -> str:
        rows = self.by_participant.get(participant_id)
        if not rows:
            return ""
        out = [f'<FormData FormOID="{F_SAE}">']
        for n, cells in enumerate(rows, start=1):
            out.append(f'<ItemGroupData ItemGroupOID="IG.SAE" ItemGroupRepeatKey="{n}">')
            out += [_el("ItemData", ItemOID=self.oid(c), Value=v)
                    for c, v in zip(self.columns, cells) if v]
            out.append("</ItemGroupData>")
        out.append("</FormData>")
        return "".join(out)


def _item_def(crf: str, field: dict, group: dict | None, units: dict[str, str],
              language: str) -> str:
    code, group_code = field["code"], (group["code"] if group else None)
    attrs = {"OID": item_oid(crf, code, group_code), "Name": code, "DataType": data_type(field)}
    if field["type"] == "text" and field.get("max_length"):
        attrs["Length"] = field["max_length"]
    if field["type"] == "meddra":
        attrs["Length"] = 8  # a MedDRA code: 8 digits
    if field["type"] == "decimal" and field.get("decimals") is not None:
        attrs["SignificantDigits"] = field["decimals"]
    parts = [f"<ItemDef{_attrs(**attrs)}>", _translated("Question", field["label"], language)]
    if field.get("unit"):
        parts.append(_el("MeasurementUnitRef", MeasurementUnitOID=units[field["unit"]]))
    if field["type"] in ("integer", "decimal"):
        for key, comparator in (("min", "GE"), ("max", "LE")):
            if key in field:
                parts.append(f'<RangeCheck Comparator="{comparator}" SoftHard="Hard">'
                             f'{_el("CheckValue", str(field[key]))}</RangeCheck>')
    if field["type"] == "choice":
        parts.append(_el("CodeListRef", CodeListOID=f"CL.{crf}."
                         + (f"{group_code}." if group_code else "") + code))
    parts.append("</ItemDef>")
    return "".join(parts)


def _code_list(oid: str, name: str, kind: str, choices: list[tuple[str, str]],
               language: str) -> str:
    items = "".join(f"<CodeListItem CodedValue={quoteattr(str(value))}>"
                    f"{_translated('Decode', label, language)}</CodeListItem>"
                    for value, label in choices)
    return f"<CodeList{_attrs(OID=oid, Name=name, DataType=kind)}>{items}</CodeList>"


def metadata(trial: Trial, version: ProtocolVersion, layouts: dict[str, CRFLayout],
             allocation: _Allocation, visits: list[dict], sae: _SAE | None = None) -> str:
    # The protocol's texts are in its first language, as the trial and arm rows are, whoever
    # exports (``export_odm``).
    language = languages_of(definition_of(version.pk, first_language=True))[0]
    units: dict[str, str] = {}
    for layout in layouts.values():
        for item in layout.items():
            if item.field.get("unit"):
                units.setdefault(item.field["unit"], f"MU.{len(units) + 1}")
    out = [f"<Study OID={quoteattr('ST.' + trial.slug)}>", "<GlobalVariables>",
           _el("StudyName", trial.short_title), _el("StudyDescription", trial.title),
           _el("ProtocolName", trial.registry_id or trial.short_title), "</GlobalVariables>",
           "<BasicDefinitions>"]
    out += [f"<MeasurementUnit{_attrs(OID=oid, Name=unit)}>{_translated('Symbol', unit, language)}"
            "</MeasurementUnit>" for unit, oid in units.items()]
    out.append("</BasicDefinitions>")
    out.append(f"<MetaDataVersion{_attrs(OID=f'MDV.{version.number}', Name=version.label)}>")
    events = ([(event_oid(v["code"]), v["label"], bool(v.get("repeat")), "Scheduled", v["crfs"])
               for v in visits]
              + [(SE_UNSCHEDULED, "Unscheduled visit", True, "Unscheduled", list(layouts)),
                 (SE_NO_VISIT, "Forms outside visits", False, "Common",
                  [F_ALLOCATION] + ([F_SAE] if sae else []) + list(layouts))])
    out.append("<Protocol>")
    out += [_el("StudyEventRef", StudyEventOID=oid, OrderNumber=n, Mandatory="No")
            for n, (oid, *_rest) in enumerate(events, start=1)]
    out.append("</Protocol>")
    for oid, label, repeating, kind, crfs in events:
        out.append(_open("StudyEventDef", OID=oid, Name=label,
                         Repeating="Yes" if repeating else "No", Type=kind))
        out += [_el("FormRef", FormOID=c if c in (F_ALLOCATION, F_SAE) else form_oid(c),
                    OrderNumber=n, Mandatory="No")
                for n, c in enumerate(crfs, start=1) if c in (F_ALLOCATION, F_SAE) or c in layouts]
        out.append("</StudyEventDef>")
    out.append(f'<FormDef OID="{F_ALLOCATION}" Name="Allocation" Repeating="No">'
               f'<ItemGroupRef ItemGroupOID="IG.ALLOCATION" Mandatory="Yes"/></FormDef>')
    if sae:
        out.append(f'<FormDef OID="{F_SAE}" Name="Serious adverse events" Repeating="No">'
                   f'<ItemGroupRef ItemGroupOID="IG.SAE" Mandatory="Yes"/></FormDef>')
    for layout in layouts.values():
        out.append(_open("FormDef", OID=form_oid(layout.code), Name=layout.label,
                         Repeating="No"))
        out.append(_el("ItemGroupRef", ItemGroupOID=group_oid(layout.code), OrderNumber=1,
                       Mandatory="Yes"))
        out += [_el("ItemGroupRef", ItemGroupOID=group_oid(layout.code, g["code"]),
                    OrderNumber=n, Mandatory="No")
                for n, g in enumerate(layout.groups, start=2)]
        out.append("</FormDef>")
    out.append('<ItemGroupDef OID="IG.ALLOCATION" Name="Allocation" Repeating="No">')
    out += [_el("ItemRef", ItemOID=oid, OrderNumber=n, Mandatory="No")
            for n, (oid, *_rest) in enumerate(allocation.items(), start=1)]
    out.append("</ItemGroupDef>")
    if sae:
        out.append('<ItemGroupDef OID="IG.SAE" Name="SAE report" Repeating="Yes">')
        out += [_el("ItemRef", ItemOID=sae.oid(c), OrderNumber=n, Mandatory="No")
                for n, c in enumerate(sae.columns, start=1)]
        out.append("</ItemGroupDef>")
    for layout in layouts.values():
        plain = [f for f in layout.fields if f["type"] != "group"]
        out.append(_open("ItemGroupDef", OID=group_oid(layout.code), Name=layout.code,
                         Repeating="No"))
        out += [_el("ItemRef", ItemOID=item_oid(layout.code, f["code"]), OrderNumber=n,
                    Mandatory="Yes" if f.get("required") else "No")
                for n, f in enumerate(plain, start=1)]
        out.append("</ItemGroupDef>")
        for g in layout.groups:
            out.append(_open("ItemGroupDef", OID=group_oid(layout.code, g["code"]),
                             Name=g["label"], Repeating="Yes"))
            out += [_el("ItemRef", ItemOID=item_oid(layout.code, f["code"], g["code"]),
                        OrderNumber=n, Mandatory="Yes" if f.get("required") else "No")
                    for n, f in enumerate(g["fields"], start=1)]
            out.append("</ItemGroupDef>")
    for oid, name, kind, code_list in allocation.items():
        out.append(f"<ItemDef{_attrs(OID=oid, Name=name, DataType=kind)}>"
                   + (_el("CodeListRef", CodeListOID=code_list) if code_list else "")
                   + "</ItemDef>")
    if sae:
        out += [f"<ItemDef{_attrs(OID=sae.oid(c), Name=c, DataType='text')}></ItemDef>"
                for c in sae.columns]
    for layout in layouts.values():
        out += [_item_def(layout.code, item.field, item.group, units, language) for item in layout.items()]
    if allocation.show_arm:
        out.append(_code_list("CL.ALLOCATION.ARM", "arm", "text", allocation.arms,
                              language))
    for layout in layouts.values():
        for item in layout.items():
            if item.field["type"] == "choice":
                group = f"{item.group['code']}." if item.group else ""
                out.append(_code_list(f"CL.{layout.code}.{group}{item.code}", item.path,
                                      _choice_type(item.field),
                                      [(c["code"], c["label"]) for c in item.field["choices"]],
                                      language))
    with translation.override(language):  # decoded in the file's language (xml:lang)
        missing_codes = [(code, str(label)) for code, label in CODE_LABELS.items()]
    out.append(_code_list(CL_MISSING, "missing-data code", "text", missing_codes, language))
    out.append(_code_list(CL_FLAGTYPE, "flag type", "text",
                          [("MISSING", "Missing-data code")], language))
    out.append("</MetaDataVersion></Study>")
    return "".join(out)


def admin_data(user, trial: Trial, version: ProtocolVersion, history) -> str:
    user_ids = sorted({uid for uid in history.order_by().values_list("history_user_id",
                                                                      flat=True).distinct()
                       if uid is not None})
    out = ["<AdminData>", _el("User", OID=SYSTEM_USER)]
    out += [_el("User", OID=f"USR.{uid}") for uid in user_ids]
    effective = version.loaded_at.date().isoformat()
    for code, name in (policy.sites_for(user, trial, Perm.EXPORT_DATA).order_by("code")
                       .values_list("code", "name")):
        out.append(f"<Location{_attrs(OID=f'LOC.{code}', Name=name, LocationType='Site')}>"
                   + _el("MetaDataVersionRef", StudyOID=f"ST.{trial.slug}",
                         MetaDataVersionOID=f"MDV.{version.number}", EffectiveDate=effective)
                   + "</Location>")
    out.append("</AdminData>")
    return "".join(out)


# --------------------------------------------------------------------------- clinical data


def _audit(user_id: int | None, site: str, when: dt.datetime, reason: str | None) -> str:
    return ("<AuditRecord>" + _el("UserRef", UserOID=f"USR.{user_id}" if user_id
                                  else SYSTEM_USER)
            + _el("LocationRef", LocationOID=f"LOC.{site}") + _el("DateTimeStamp", _instant(when))
            + (_el("ReasonForChange", reason) if reason else "") + "</AuditRecord>")


def last_changes(versions: list[tuple]) -> dict[str, tuple]:
    """``path -> (user_id, when, reason)`` of the version that last changed each answer;
    ``versions`` are ``(when, user_id, reason, data)`` oldest first."""
    changed: dict[str, tuple] = {}
    before = None
    for when, user_id, reason, data in versions:
        for difference in trail.differences(before, data):
            changed[difference.path] = (user_id, when, reason)
        before = data
    return changed


def _form(layout: CRFLayout, data: dict, site: str, versions: list[tuple]) -> str:
    changes = last_changes(versions)
    out = [f"<FormData{_attrs(FormOID=form_oid(layout.code))}>"]
    if versions:
        when, user_id, reason, _data = versions[-1]
        out.append(_audit(user_id, site, when, reason))

    def item(path: str, oid: str, field: dict, answers: dict) -> str:
        text = value_text(field, answer(field, answers))
        change = changes.get(path)
        audit = _audit(change[0], site, change[1], change[2]) if change else ""
        entry = None if text or field["type"] == "meddra" else coded(answers, field["code"])
        if entry is not None:
            return (f"<ItemData{_attrs(ItemOID=oid, IsNull='Yes')}>{audit}"
                    + _open("Annotation", SeqNum=1)
                    + (_el("Comment", entry["reason"]) if entry.get("reason") else "")
                    + "<Flag>" + _el("FlagValue", str(entry["code"]), CodeListOID=CL_MISSING)
                    + _el("FlagType", "MISSING", CodeListOID=CL_FLAGTYPE)
                    + "</Flag></Annotation></ItemData>")
        if not text:
            return ""
        if not audit:
            return _el("ItemData", ItemOID=oid, Value=text)
        return f"<ItemData{_attrs(ItemOID=oid, Value=text)}>{audit}</ItemData>"

    out.append(f'<ItemGroupData ItemGroupOID={quoteattr(group_oid(layout.code))}>')
    out += [item(f["code"], item_oid(layout.code, f["code"]), f, data)
            for f in layout.fields if f["type"] != "group"]
    out.append("</ItemGroupData>")
    for g in layout.groups:
        for i, row in enumerate(data.get(g["code"]) or []):
            out.append(_open("ItemGroupData", ItemGroupOID=group_oid(layout.code, g["code"]),
                             ItemGroupRepeatKey=i + 1))
            out += [item(f"{g['code']}[{i}].{f['code']}", item_oid(layout.code, f["code"],
                                                                   g["code"]),
                         f, row or {}) for f in g["fields"]]
            out.append("</ItemGroupData>")
    out.append("</FormData>")
    return "".join(out)


def _allocation_form(allocation: _Allocation, randomised_at, arm, kit, in_error=None) -> str:
    values = {"IT.ALLOCATION.RANDOMISED_AT": _instant(randomised_at),
              "IT.ALLOCATION.ARM": arm, "IT.ALLOCATION.KIT_CODE": kit,
              "IT.ALLOCATION.RANDOMISED_IN_ERROR": "yes" if in_error else None}
    items = "".join(_el("ItemData", ItemOID=oid, Value=values[oid])
                    for oid, *_rest in allocation.items() if values.get(oid))
    return (f'<FormData FormOID="{F_ALLOCATION}"><ItemGroupData ItemGroupOID="IG.ALLOCATION">'
            f"{items}</ItemGroupData></FormData>")


def _ordered(qs):
    return qs.order_by("participant_id", F("visit_id").asc(nulls_first=True), "id")


def _key(participant_id: int, visit_id: int | None, record_id: int) -> tuple[int, int, int]:
    return (participant_id, visit_id or 0, record_id)  # NULLS FIRST: ids are positive


def export_odm(user, trial: Trial) -> Iterator[str]:
    """The chunks of the trial's ODM file, as ``user`` may see it."""
    blinded = policy.is_blinded_for(user, trial)
    # The form, item and choice names in the protocol's first language, whoever exports.
    first = definition_of(trial.current_version_id, first_language=True)
    with translation.override(languages_of(first)[0]):
        layouts = trial_layouts(trial)
    sae = _SAE(user, trial) if safety_services.products(trial) else None
    return _document(user, trial, layouts, _Allocation(trial, blinded=blinded), sae)


def _document(user, trial: Trial, layouts: dict[str, CRFLayout],
              allocation: _Allocation, sae: _SAE | None = None) -> Iterator[str]:
    version = trial.current_version
    records = scoped_records(user, trial)
    history = (CRFRecord.history.model.objects.filter(counted("participant__"),
                                                      participant__trial=trial)
               .filter(policy.site_filter(user, trial, Perm.EXPORT_DATA,
                                          field="participant__site")))
    now = timezone.now()
    yield '<?xml version="1.0" encoding="UTF-8"?>\n' + _open(
        "ODM", xmlns=NS, ODMVersion="1.3.2", FileType="Snapshot",
        FileOID=f"CTMS.{trial.slug}.{now:%Y%m%dT%H%M%S%f}", CreationDateTime=_instant(now),
        Granularity="All", SourceSystem="CTMS")
    visits = _visits(trial)
    repeating = {event_oid(v["code"]): bool(v.get("repeat")) for v in visits}
    yield metadata(trial, version, layouts, allocation, visits, sae)
    yield admin_data(user, trial, version, history)
    yield _open("ClinicalData", StudyOID=f"ST.{trial.slug}",
                MetaDataVersionOID=f"MDV.{version.number}")

    lookups = ["participant_id", "visit_id", "pk", "participant__study_id",
               "participant__site__code", "visit__code", "visit__occurrence",
               "visit__unscheduled", "crf_code", "data", "participant__allocation__randomised_at",
               "participant__allocation__kit_code",
               "participant__allocation__in_error__recorded_at"]
    if allocation.show_arm:
        lookups.append("participant__allocation__arm__code")
    rows = _ordered(records).values_list(*lookups).iterator(chunk_size=CHUNK_SIZE)
    # The history rows in the records' order (then oldest first), merged as both are read.
    hist = (history.order_by("participant_id", F("visit_id").asc(nulls_first=True), "id",
                             "history_date", "history_id")
            .values_list("participant_id", "visit_id", "id", "history_date", "history_user_id",
                         "history_change_reason", "data")
            .iterator(chunk_size=CHUNK_SIZE))
    pending = next(hist, None)

    buffer = io.StringIO()
    subject = event = None
    for row in rows:
        (participant_id, visit_id, record_id, study_id, site, visit_code, occurrence,
         unscheduled, crf_code, data, randomised_at, kit, in_error, *arm) = row
        key = _key(participant_id, visit_id, record_id)
        versions = []
        while pending is not None and _key(*pending[:3]) <= key:
            if _key(*pending[:3]) == key:
                versions.append(pending[3:])
            pending = next(hist, None)
        if subject != participant_id:
            if event is not None:
                buffer.write("</StudyEventData>")
            if subject is not None:
                buffer.write("</SubjectData>")
            if buffer.tell() >= FLUSH_AT:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            subject, event = participant_id, None
            buffer.write(f"<SubjectData{_attrs(SubjectKey=study_id)}>"
                         + _el("SiteRef", LocationOID=f"LOC.{site}"))
            saes = sae.form(participant_id) if sae else ""
            if randomised_at is not None or saes:
                event = (SE_NO_VISIT, None)
                buffer.write(f'<StudyEventData StudyEventOID="{SE_NO_VISIT}">'
                             + (_allocation_form(allocation, randomised_at,
                                                 arm[0] if arm else None, kit, in_error)
                                if randomised_at is not None else "") + saes)
        oid = event_oid(visit_code if visit_id else None, bool(unscheduled))
        this_event = (oid, visit_id)
        if event != this_event:
            if event is not None:
                buffer.write("</StudyEventData>")
            repeat = occurrence if visit_id and repeating.get(oid, True) else None
            buffer.write(_open("StudyEventData", StudyEventOID=oid,
                               StudyEventRepeatKey=repeat))
            event = this_event
        layout = layouts.get(crf_code)
        if layout is not None:
            buffer.write(_form(layout, data or {}, site, versions))
    if event is not None:
        buffer.write("</StudyEventData>")
    if subject is not None:
        buffer.write("</SubjectData>")
    buffer.write("</ClinicalData></ODM>\n")
    yield buffer.getvalue()

