"""What a CRF says, as signatures and the audit trail read it. Pure functions, no database.

- ``content_digest``: the SHA-256 of a CRF's canonical content (participant, CRF, visit,
  protocol version and answers). A signature stores it; the signature counts only while the
  record's current digest is the same, so a change by any route (a page, a script, a raw SQL
  UPDATE) shows the signature as no longer valid.
- ``flatten`` and ``differences``: answers as ``path -> value`` (``events[1].grade``) and the
  field-level changes between two versions, for the per-CRF history page.
- ``field_paths``, ``path_label``, ``display``: the answers a query may be raised on, and how a
  path and a value read to a person.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from .missing_data import MISSING_KEY, code_text

PATH = re.compile(r"^(?P<code>[A-Za-z0-9_]+)(?:\[(?P<row>[0-9]{1,4})\]\.(?P<sub>[A-Za-z0-9_]+))?$")


# --- signatures --------------------------------------------------------------------------------

def canonical_content(*, participant: str, crf_code: str, visit_id: int | None,
                      protocol_version_id: int, data: dict) -> bytes:
    """The bytes a signature is bound to: sorted keys, no whitespace, UTF-8. Decimals are stored
    as strings, so the same answers always give the same bytes on SQLite and PostgreSQL."""
    content = {"participant": participant, "crf_code": crf_code, "visit": visit_id,
               "protocol_version": protocol_version_id, "data": data}
    return json.dumps(content, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def content_digest(record) -> str:
    """SHA-256 (hex) of ``record``'s canonical content; ``record`` is a ``CRFRecord`` or one of
    its history rows (which carry the same fields)."""
    return hashlib.sha256(canonical_content(
        participant=record.participant.study_id, crf_code=record.crf_code,
        visit_id=record.visit_id, protocol_version_id=record.protocol_version_id,
        data=record.data or {})).hexdigest()


# --- field-level differences -------------------------------------------------------------------

@dataclass(frozen=True)
class Coded:
    """A missing-data code standing for an answer's value (``crfs.missing_data``), as the
    trail compares and shows it: "Unknown (UNK): lab not sent"."""
    code: str
    reason: str = ""

    def __str__(self) -> str:
        return code_text({"code": self.code, "reason": self.reason})


def _with_codes(answers: dict) -> dict:
    """``answers`` with each coded answer's value replaced by its ``Coded`` code."""
    table = answers.get(MISSING_KEY)
    out = {k: v for k, v in answers.items() if k != MISSING_KEY}
    if isinstance(table, dict):
        for code, entry in table.items():
            if isinstance(entry, dict) and entry.get("code") and out.get(code) is None:
                out[code] = Coded(str(entry["code"]), str(entry.get("reason") or ""))
    return out


def flatten(data: dict | None, prefix: str = "") -> dict[str, Any]:
    """Answers as ``{path: value}``; each row of a group gives ``group[i].code`` paths, and an
    answered-but-empty group gives ``group: []`` so that removing its rows shows. A coded
    answer (a missing-data code) has its ``Coded`` code as value."""
    flat: dict[str, Any] = {}
    for code, value in _with_codes(data or {}).items():
        if isinstance(value, list) and all(isinstance(row, dict) for row in value) and value:
            for i, row in enumerate(value):
                for sub, sub_value in _with_codes(row).items():
                    flat[f"{prefix}{code}[{i}].{sub}"] = sub_value
        elif isinstance(value, dict):  # derivation_notes: {field: why not evaluable}
            for sub, sub_value in value.items():
                flat[f"{prefix}{code}.{sub}"] = sub_value
        else:
            flat[f"{prefix}{code}"] = value
    return flat


@dataclass(frozen=True)
class Difference:
    path: str
    old: Any
    new: Any


def differences(before: dict | None, after: dict | None) -> list[Difference]:
    """Every answer whose value differs between two versions, in the order of ``after`` then
    of the answers only ``before`` had."""
    old, new = flatten(before), flatten(after)
    paths = list(new) + [p for p in old if p not in new]
    return [Difference(p, old.get(p), new.get(p)) for p in paths
            if _answer(old.get(p)) != _answer(new.get(p))]


def _answer(value: Any) -> Any:
    """Unanswered is unanswered, however stored (None, "", or a visible group with no row)."""
    return None if value in (None, "", []) else value


# --- paths as people read them -----------------------------------------------------------------

def _field(fields: list[dict], code: str) -> dict | None:
    return next((f for f in fields if f["code"] == code), None)


def resolve(definition: dict, path: str) -> tuple[dict, dict | None, int | None] | None:
    """``(field, group, row)`` named by ``path`` in the CRF definition, or None when the path
    names nothing: ``weight_kg`` -> (field, None, None); ``events[1].grade`` -> (grade field,
    events group, 1); ``events`` -> (the group itself, None, None)."""
    match = PATH.match(path or "")
    if match is None:
        return None
    top = _field(definition.get("fields", []), match["code"])
    if top is None:
        return None
    if match["sub"] is None:
        return top, None, None
    if top["type"] != "group":
        return None
    sub = _field(top["fields"], match["sub"])
    return (sub, top, int(match["row"])) if sub is not None else None


def field_paths(definition: dict, data: dict | None) -> list[tuple[str, str]]:
    """``(path, label)`` of every answer a query may be raised on: each field, each group as a
    whole, and each sub-field of each row the data hold."""
    out = []
    for f in definition.get("fields", []):
        out.append((f["code"], f["label"]))
        if f["type"] == "group":
            for i, _row in enumerate((data or {}).get(f["code"]) or []):
                for sub in f["fields"]:
                    path = f"{f['code']}[{i}].{sub['code']}"
                    out.append((path, path_label(definition, path)))
    return out


def path_label(definition: dict, path: str) -> str:
    """``events[1].grade`` -> ``Adverse events #2 › Grade``; an unknown path reads as itself."""
    found = resolve(definition, path)
    if found is None:
        return path
    field, group, row = found
    if group is None:
        return field["label"]
    return f"{group['label']} #{row + 1} › {field['label']}"


def display(definition: dict, path: str, value: Any) -> str:
    """A stored value in words: choice labels, yes/no, units; '—' when unanswered."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, Coded):
        return str(value)
    found = resolve(definition, path)
    field = found[0] if found else {}
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    labels = {str(c["code"]): c["label"] for c in field.get("choices", [])}
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return _("%(n)d row(s)") % {"n": len(value)}
        return ", ".join(labels.get(str(v), str(v)) for v in value)
    text = labels.get(str(value), str(value))
    return f"{text} {field['unit']}" if field.get("unit") and not labels else text
