"""CRF answers sent as JSON, judged by the very form the CRF page uses.

The page's form (``crfs.forms.build_crf_form``) is the one judge of what a CRF accepts:
types, ranges, decimals, dates in the future, ``show_if`` and ``required_if``, required answers
to complete, group rows; the save then runs the protocol's edit checks (``crfs.checks``: a hard
one refused by answer path, nothing written). The API turns the JSON answers into what the
page would post (``weight_kg=72.5``, ``events-0-grade=3``, ``events-TOTAL=1``), runs that form,
and reports its errors by answer path (``weight_kg``, ``events[0].grade``) — the paths data
queries and the audit trail use.

A missing-data code is sent as the page stores it, beside the answers (per record, or per group
row): ``"_missing": {"ki67_percent": {"code": "UNK", "reason": "not sent by the lab"}}``, the
answer itself null or absent; a partial date as its ISO text (``"2019-03"``).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _

from crfs.derivations import NOTES_KEY
from crfs.forms import CODE_SUFFIX, REASON_SUFFIX, build_crf_form, form_to_data
from crfs.missing_data import MISSING_KEY, allowed_codes

SCALARS = (str, int, float)


def _as_post(fdef: dict, value: Any, path: str, errors: dict[str, list[str]]) -> list[str]:
    """One answer as the posted strings of its form field."""
    kind = fdef["type"]
    if value is None:
        return []
    if kind == "yesno":
        if not isinstance(value, bool):
            errors[path] = [_("Expected true or false.")]
            return []
        return ["true" if value else "false"]
    if kind == "multichoice":
        if not isinstance(value, list) or not all(
                isinstance(v, SCALARS) and not isinstance(v, bool) for v in value):
            errors[path] = [_("Expected a list of choice codes.")]
            return []
        return [str(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, SCALARS):
        errors[path] = [_("Expected a single value (a number, a date or a text).")]
        return []
    return [str(value)]


def to_post(definition: dict, data: dict) -> tuple[MultiValueDict, dict[str, list[str]]]:
    """The JSON answers as the page's POST data, and the errors of shape found on the way."""
    post, errors = MultiValueDict(), {}
    fields = {f["code"]: f for f in definition["fields"]}
    for code, value in data.items():
        fdef = fields.get(code)
        if code == NOTES_KEY:
            continue  # why derived values are not evaluable: computed on save, like them
        elif code == MISSING_KEY:
            _codes_to_post(fields, value, "", "", post, errors)
        elif fdef is None:
            errors[str(code)] = [_("This CRF has no such field.")]
        elif fdef.get("derived"):
            continue  # computed on save, never read from input (a client may send it back)
        elif fdef["type"] == "group":
            _group_to_post(fdef, value, post, errors)
        else:
            post.setlist(code, _as_post(fdef, value, code, errors))
    return post, errors


def _group_to_post(group: dict, rows: Any, post: MultiValueDict, errors: dict) -> None:
    code = group["code"]
    if rows is None:
        return
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        errors[code] = [_("Expected a list of rows (objects).")]
        return
    limit = group.get("max_rows", 100)
    if len(rows) > limit:
        errors[code] = [_("At most %(n)d rows.") % {"n": limit}]
        return
    subs = {f["code"]: f for f in group["fields"]}
    post[f"{code}-TOTAL"] = str(len(rows))
    for i, row in enumerate(rows):
        for sub, value in row.items():
            path = f"{code}[{i}].{sub}"
            if sub == MISSING_KEY:
                _codes_to_post(subs, value, f"{code}-{i}-", f"{code}[{i}].", post, errors)
            elif sub not in subs:
                errors[path] = [_("This CRF has no such field.")]
            elif not subs[sub].get("derived"):
                post.setlist(f"{code}-{i}-{sub}", _as_post(subs[sub], value, path, errors))


def _codes_to_post(fields: dict[str, dict], table: Any, name_prefix: str, path_prefix: str,
                   post: MultiValueDict, errors: dict) -> None:
    """``_missing`` ({field: {"code": …, "reason": …}}) as the page's code and reason inputs."""
    if not isinstance(table, dict):
        errors[path_prefix + MISSING_KEY] = [
            _("Expected an object: {field: {\"code\": …, \"reason\": …}}.")]
        return
    for code, entry in table.items():
        path = f"{path_prefix}{code}"
        fdef = fields.get(code)
        if fdef is None:
            errors[path] = [_("This CRF has no such field.")]
        elif not allowed_codes(fdef):
            errors[path] = [_("This answer allows no missing-data code.")]
        elif not isinstance(entry, dict) or not isinstance(entry.get("code"), str) \
                or not isinstance(entry.get("reason", ""), str):
            errors[path] = [_("Expected {\"code\": \"ND\", \"NA\" or \"UNK\", "
                              "\"reason\": a text}.")]
        else:
            post[f"{name_prefix}{code}{CODE_SUFFIX}"] = entry["code"]
            post[f"{name_prefix}{code}{REASON_SUFFIX}"] = entry.get("reason", "")


def _path(form_name: str) -> str:
    """A form field's name (``events-1-grade``) as an answer path (``events[1].grade``)."""
    parts = form_name.split("-")
    if len(parts) == 3 and parts[1].isdigit():
        return f"{parts[0]}[{parts[1]}].{parts[2]}"
    return form_name


def clean_answers(definition: dict, data: dict, *, complete: bool, stored: dict | None,
                  derivable: Iterable[str] = ()) -> dict:
    """The answers in their stored form, or ``ValidationError({path: [messages]})``;
    ``derivable``: answers the save derives when left blank."""
    post, errors = to_post(definition, data)
    if errors:
        raise ValidationError(errors)
    form = build_crf_form(definition, mode="complete" if complete else "draft", data=post,
                          initial=stored or {}, derivable=derivable)
    if not form.is_valid():
        raise ValidationError({
            (_path(name) if name != "__all__" else "__all__"): [str(m) for m in messages]
            for name, messages in form.errors.items()})
    return form_to_data(form)
