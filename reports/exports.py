"""CSV exports of captured CRFs, streamed: one file per CRF definition, in a long or a wide form.

Who and what (docs/reports-and-exports.md says it for people):
- Only users with ``Perm.EXPORT_DATA`` (data manager, sponsor, statistician), and only the rows
  of the sites where they hold it (``trials.policy.site_filter``).
- Pseudonymised: participants appear by study ID and site code only; no user names. A protocol
  field marked ``identifying: true`` is never exported.
- Blinding: a reader for whom ``is_blinded_for(user, trial)`` gets a ``kit_code`` column and no
  arm is ever selected from the database, so no arm can reach the bytes (an emergency unblinding
  shows the arm on screen to its investigator, never in an export to a blinded role).
- Streamed: the rows come from one ``values_list`` query read with ``.iterator(chunk_size=…)``
  (a server-side cursor on PostgreSQL), written through ``csv.writer`` into a small buffer that
  is handed out every ~64 KB. Nothing holds all rows; the query count is fixed whatever the
  number of participants (two or three queries per file). ``export_zip`` puts every CRF's
  file in one ZIP archive, compressed and handed out as it is written (``zipfile`` writes to
  an unseekable stream with data descriptors).

Values: codes as the protocol defines them (choice codes, not labels); yes/no as 1/0; dates
ISO (a partial date in ISO 8601 reduced precision, ``2019-03``); decimals exactly as stored;
multiple choices joined with ``|`` in protocol order. An answer given as a missing-data code
(``crfs.missing_data``) is exported as its code (``ND``, ``NA``, ``UNK``) where the value would
be; its reason is not in the CSV (it is in the ODM export and on the History page).
Long form: one row per answered value (unanswered values are left out), a group's answers one
row per row of the group with ``repeat`` 1, 2, 3…; wide form: one row per CRF record, one column
per field, group fields flattened as ``<group>_<field>_<n>`` up to the largest number of rows
any exported record has.

CSV injection: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
and is not a plain number is prefixed with ``'`` so that a spreadsheet shows it as text instead
of running it as a formula (OWASP's advice). Plain numbers such as ``-3`` or ``-0.5`` are left
alone so that they stay numbers.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Iterator

from django.db.models import Case, CharField, F, Func, IntegerField, Max, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils.translation import gettext as _

from crfs.missing_data import coded
from crfs.models import CRFRecord
from patients.models import counted
from trials import policy
from trials.models import ProtocolVersion, Trial, definition_of
from trials.policy import Perm
from trials.selectors import term_list

CHUNK_SIZE = 2000          # rows per fetch from the database cursor
FLUSH_AT = 64 * 1024       # characters buffered before a chunk goes to the client
MULTI_SEPARATOR = "|"
FORMS = ("long", "wide")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


# --------------------------------------------------------------------------- what a CRF holds


@dataclass(frozen=True)
class Item:
    """One exportable answer of a CRF: a top-level field, or a field of a repeating group."""
    field: dict
    group: dict | None = None

    @property
    def code(self) -> str:
        return self.field["code"]

    @property
    def path(self) -> str:
        """``weight_kg``, or ``events.grade`` for a field of a group."""
        return f"{self.group['code']}.{self.code}" if self.group else self.code


@dataclass(frozen=True)
class CRFLayout:
    code: str
    label: str
    fields: list[dict]   # top-level fields, groups with their ``fields``, identifying ones out

    @property
    def groups(self) -> list[dict]:
        return [f for f in self.fields if f["type"] == "group"]

    def items(self) -> list[Item]:
        out: list[Item] = []
        for f in self.fields:
            if f["type"] == "group":
                out += [Item(sub, f) for sub in f["fields"]]
            else:
                out.append(Item(f))
        return out


def _identifying(fields: list[dict], prefix: str = "") -> set[str]:
    out = set()
    for f in fields:
        if f.get("identifying"):
            out.add(prefix + f["code"])
        elif f["type"] == "group":
            out |= _identifying(f["fields"], f"{f['code']}.")
    return out


def _exportable(fields: list[dict], identifying: set[str], prefix: str = "") -> list[dict]:
    """The fields without those marked ``identifying`` (in any protocol version)."""
    out = []
    for f in fields:
        if prefix + f["code"] in identifying:
            continue
        if f["type"] == "group":
            f = {**f, "fields": _exportable(f["fields"], identifying, f"{f['code']}.")}
        out.append(f)
    return out


def _with_meddra(fields: list[dict]) -> list[dict]:
    """Each term field followed by its MedDRA code (``<code>_meddra``), read from the term list
    its terminology names; a free-text answer from before the term list has none."""
    out = []
    for f in fields:
        if f["type"] == "group":
            f = {**f, "fields": _with_meddra(f["fields"])}
        out.append(f)
        if f["type"] == "term":
            out.append({"code": f"{f['code']}_meddra", "type": "meddra", "meddra_of": f["code"],
                        "label": _("%(field)s: MedDRA code") % {"field": f["label"]},
                        "terms": term_list(f["terminology"])})
    return out


def answer(field: dict, answers: dict) -> Any:
    """The stored answer of ``field`` in ``answers`` (a record's data or a group row)."""
    if field["type"] == "meddra":
        term = field["terms"].find(answers.get(field["meddra_of"])) if field["terms"] else None
        return term.meddra_code if term else None
    return answers.get(field["code"])


def _merge(into: list[dict], more: list[dict]) -> None:
    """Add to ``into`` the fields (and group fields) only ``more`` has, keeping ``into``'s order:
    data captured under an older protocol version keep their columns."""
    known = {f["code"]: f for f in into}
    for f in more:
        if f["code"] not in known:
            into.append(f)
            known[f["code"]] = f
        elif f["type"] == "group" and known[f["code"]]["type"] == "group":
            subs = list(known[f["code"]]["fields"])
            _merge(subs, f["fields"])
            known[f["code"]].update(fields=subs)


def trial_layouts(trial: Trial) -> dict[str, CRFLayout]:
    """Every CRF of the trial, from its current protocol version, with the fields that earlier
    versions had and the current one dropped appended. One query (the version ids); each
    definition is read once per process."""
    version_ids = list(ProtocolVersion.objects.filter(trial=trial).order_by("-number")
                       .values_list("pk", flat=True))
    identifying: dict[str, set[str]] = {}
    for version_id in version_ids:
        for crf in definition_of(version_id).get("crfs", []):
            identifying.setdefault(crf["code"], set()).update(_identifying(crf["fields"]))
    layouts: dict[str, CRFLayout] = {}
    for version_id in version_ids:
        for crf in definition_of(version_id).get("crfs", []):
            fields = [dict(f) for f in _with_meddra(_exportable(crf["fields"],
                                                                identifying[crf["code"]]))]
            if crf["code"] not in layouts:
                layouts[crf["code"]] = CRFLayout(crf["code"], crf["label"], fields)
            else:
                _merge(layouts[crf["code"]].fields, fields)
    return layouts


def layout_for(trial: Trial, crf_code: str) -> CRFLayout:
    layout = trial_layouts(trial).get(crf_code)
    if layout is None:
        raise Http404(_("No CRF %(code)s in the protocol of %(trial)s.")
                      % {"code": crf_code, "trial": trial.short_title})
    return layout


# --------------------------------------------------------------------------- values as text


def cell_text(field: dict, answers: dict) -> str:
    """An answer as a CSV cell: its value, or its missing-data code when it has one."""
    text = value_text(field, answer(field, answers))
    if not text and field["type"] != "meddra":
        entry = coded(answers, field["code"])
        if entry is not None:
            return str(entry["code"])
    return text


def value_text(field: dict, value: Any) -> str:
    """A stored answer as exported (CSV cell, ODM ItemData Value)."""
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return MULTI_SEPARATOR.join(str(v) for v in value)
    return str(value)


def neutralise(cell: str) -> str:
    """Keep a spreadsheet from running a cell as a formula (see the module's docstring)."""
    if cell.startswith(_DANGEROUS) and not _NUMBER.match(cell):
        return "'" + cell
    return cell


# --------------------------------------------------------------------------- the rows


def _arm_columns(user, trial: Trial) -> list[tuple[str, str]]:
    """(header, lookup) of the allocation columns this reader may see."""
    if policy.is_blinded_for(user, trial):
        return [("kit_code", "participant__allocation__kit_code")]
    columns = [("arm", "participant__allocation__arm__code")]
    if trial.masking != "open":
        columns.append(("kit_code", "participant__allocation__kit_code"))
    return columns


META = ["study_id", "site", "visit", "visit_occurrence", "visit_date"]
RECORD_META = ["crf", "record", "status", "protocol_version", "last_change_utc"]


def scoped_records(user, trial: Trial) -> QuerySet[CRFRecord]:
    """The CRF records of ``trial`` at the sites where ``user`` may export."""
    return (CRFRecord.objects.filter(counted("participant__"), participant__trial=trial)
            .filter(policy.site_filter(user, trial, Perm.EXPORT_DATA, field="participant__site")))


def _rows(user, trial: Trial, crf_code: str) -> tuple[list[str], Iterator[tuple]]:
    arm = _arm_columns(user, trial)
    lookups = (["participant__study_id", "participant__site__code", "visit__code",
                "visit__occurrence", "visit__done_on"] + [lookup for _, lookup in arm]
               + ["randomised_in_error", "emergency_allocation", "crf_code", "pk", "status",
                  "protocol_version__label", "updated_at", "data"])
    qs = (scoped_records(user, trial).filter(crf_code=crf_code)
          # "yes" for a participant recorded as randomised in error: kept in the arm
          # allocated (intention to treat), flagged; "yes" for an allocation made from the
          # sealed envelopes while the system was down, recorded afterwards.
          .annotate(
              randomised_in_error=Case(
                  When(participant__allocation__in_error__isnull=False, then=Value("yes")),
                  default=Value(""), output_field=CharField()),
              emergency_allocation=Case(
                  When(participant__allocation__emergency__isnull=False, then=Value("yes")),
                  default=Value(""), output_field=CharField()))
          .order_by("participant__study_id", F("visit__target_date").asc(nulls_first=True),
                    "visit__occurrence", "pk")
          .values_list(*lookups))
    header = (META + [name for name, _ in arm] + ["randomised_in_error", "emergency_allocation"]
              + RECORD_META)
    return header, qs.iterator(chunk_size=CHUNK_SIZE)


def _meta_cells(row: tuple) -> tuple[list[str], dict]:
    *meta, updated_at, data = row
    cells = ["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v))
             for v in meta]
    cells.append(updated_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return cells, data or {}


def long_rows(user, trial: Trial, layout: CRFLayout) -> Iterator[list[str]]:
    """Header, then one row per answered value."""
    header, rows = _rows(user, trial, layout.code)
    yield header + ["field", "repeat", "value"]
    for row in rows:
        meta, data = _meta_cells(row)
        for f in layout.fields:
            if f["type"] == "group":
                for i, answers in enumerate(data.get(f["code"]) or [], start=1):
                    for sub in f["fields"]:
                        text = cell_text(sub, answers or {})
                        if text:
                            yield meta + [f"{f['code']}.{sub['code']}", str(i), text]
            else:
                text = cell_text(f, data)
                if text:
                    yield meta + [f["code"], "", text]


class _ArrayLength(Func):
    """The number of rows of a group in ``data`` (0 when absent or not a list)."""
    output_field = IntegerField()

    def __init__(self, key: str):
        super().__init__(Value(key))
        self.key = key

    def as_sql(self, compiler, connection, **extra):  # SQLite
        return "COALESCE(json_array_length(data, %s), 0)", ['$."' + self.key + '"']

    def as_postgresql(self, compiler, connection, **extra):
        column = compiler.quote_name_unless_alias(CRFRecord._meta.db_table) + ".data"
        return (f"COALESCE(jsonb_array_length(CASE WHEN jsonb_typeof({column} -> %s) = 'array' "
                f"THEN {column} -> %s END), 0)", [self.key, self.key])


def group_sizes(user, trial: Trial, layout: CRFLayout) -> dict[str, int]:
    """The largest number of rows each group has among the exported records (one query)."""
    if not layout.groups:
        return {}
    sizes = (scoped_records(user, trial).filter(crf_code=layout.code)
             .aggregate(**{f"g{i}": Coalesce(Max(_ArrayLength(g["code"])), 0)
                           for i, g in enumerate(layout.groups)}))
    return {g["code"]: sizes[f"g{i}"] or 0 for i, g in enumerate(layout.groups)}


def wide_rows(user, trial: Trial, layout: CRFLayout) -> Iterator[list[str]]:
    """Header, then one row per CRF record."""
    sizes = group_sizes(user, trial, layout)
    header, rows = _rows(user, trial, layout.code)
    columns: list[str] = []
    for f in layout.fields:
        if f["type"] == "group":
            columns += [f"{f['code']}_{sub['code']}_{i}"
                        for i in range(1, sizes[f["code"]] + 1) for sub in f["fields"]]
        else:
            columns.append(f["code"])
    yield header + columns
    for row in rows:
        meta, data = _meta_cells(row)
        cells = []
        for f in layout.fields:
            if f["type"] == "group":
                answers = data.get(f["code"]) or []
                for i in range(sizes[f["code"]]):
                    row_answers = (answers[i] or {}) if i < len(answers) else {}
                    cells += [cell_text(sub, row_answers) for sub in f["fields"]]
            else:
                cells.append(cell_text(f, data))
        yield meta + cells


def csv_chunks(rows: Iterator[list[str]]) -> Iterator[str]:
    """CSV text in chunks of about ``FLUSH_AT`` characters, cells neutralised; UTF-8 BOM first
    (spreadsheets then read accents right)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
        if buffer.tell() >= FLUSH_AT:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_csv(user, trial: Trial, crf_code: str, form: str) -> Iterator[str]:
    """The chunks of one CRF's CSV export; 404 for an unknown CRF or form."""
    if form not in FORMS:
        raise Http404(_("No export form %(form)s: choose long or wide.") % {"form": form})
    layout = layout_for(trial, crf_code)
    rows = long_rows(user, trial, layout) if form == "long" else wide_rows(user, trial, layout)
    return csv_chunks(rows)


class _Sink(io.RawIOBase):
    """A write-only, unseekable file that keeps what was written until taken: ``zipfile``
    then writes each member with a data descriptor, so the archive streams."""

    def __init__(self):
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:  # zipfile asks where each member starts
        return self._position

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def export_zip(user, trial: Trial, form: str) -> Iterator[bytes]:
    """Every CRF's CSV in one ZIP archive (``<crf>-<form>.csv`` each), streamed: each member is
    compressed as its rows come and handed out as it grows."""
    if form not in FORMS:
        raise Http404(_("No export form %(form)s: choose long or wide.") % {"form": form})
    layouts = list(trial_layouts(trial).values())
    return _zip_chunks(user, trial, layouts, form)


def _zip_chunks(user, trial: Trial, layouts: list[CRFLayout], form: str) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for layout in layouts:
            rows = (long_rows(user, trial, layout) if form == "long"
                    else wide_rows(user, trial, layout))
            with archive.open(f"{trial.slug}-{layout.code}-{form}.csv", "w",
                              force_zip64=True) as member:
                for chunk in csv_chunks(rows):
                    member.write(chunk.encode("utf-8"))
                    data = sink.take()
                    if data:
                        yield data
    yield sink.take()
