"""CRF forms built from the protocol's CRF definitions (``trials/protocol.py``, ``_field``).

A trial's case report forms are data, so their Django forms are built at run time: one form
field per answer, group rows flattened as ``<group>-<i>-<code>`` with a ``<group>-TOTAL`` count,
so the page works without JavaScript and the server stays the only judge of what is valid.

Two modes, because a CRF is saved many times before it is completed: ``draft`` requires
nothing but refuses any invalid value; ``complete`` also requires every required answer that
``show_if`` leaves visible (``required``, or ``required_if`` when its expression holds), and
each group's ``min_rows``. Answers to hidden fields are stored
as None: a stale answer nobody can see must not survive into the data.

Stored data (one JSON dict per CRF) holds every field of the definition, None when unanswered:
integer -> int; decimal -> str (exact, normalised to ``decimals`` when given); date ->
'YYYY-MM-DD'; choice -> the protocol's code (int or str); multichoice -> list of codes in
protocol order; yesno -> bool; text -> stripped str; term -> the term's label as its
terminology writes it (typed in any case, or as its MedDRA code; ``trials.terminology``);
group -> list of row dicts (blank rows dropped; [] when visible and empty). ``derived`` fields
are never read from input.

Missing-data codes and partial dates (``crfs.missing_data``): a field whose protocol entry has
``missing`` gets two more form fields, ``<name>__code`` (ND, NA, UNK as allowed) and, when a
reason is asked, ``<name>__reason``; a coded answer is stored as None with the code under
``_missing`` (per record, per group row) and counts as answered. A date field with ``partial``
is entered as day / month / year boxes and stored as ISO 8601 reduced precision text
(``2019-03``, ``2019``). Their errors are given on the answer's own name.

A term field with a ``grade_field`` refuses a grade the chosen term does not define. Rows saved
before the field was a term (free text) are kept as they were and shown as such; the form
refuses their text only when the CRF is saved again, naming it, so the term gets chosen then.
"""
from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field as dc_field
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dates import MONTHS
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _, ngettext_lazy

from core import limits
from core.forms import DATE_INPUT_FORMATS, DateInput
from trials.expressions import Env, condition_ast, evaluate
from trials.selectors import TermInfo, TermList, term_list

from .derivations import NOTES_KEY
from .missing_data import (CODE_LABELS, MISSING_KEY, allowed_codes, coded, parts_of,
                           reason_rule)

REQUIRED_MESSAGE = _("This field is required to complete the form.")
DATE_FORMATS = DATE_INPUT_FORMATS  # ISO, and the French/European way of writing dates
SPARE_ROWS = 2  # blank rows offered when JavaScript is off; crf.js removes them
ROW_LIMIT = 100  # rows accepted per group when the protocol gives no max_rows
MODES = ("draft", "complete")
CODE_SUFFIX, REASON_SUFFIX = "__code", "__reason"
REASON_LIMIT = 500


# --- show_if and required_if (expressions, trials/expressions.py) -----------------------------

def _same(a: Any, b: Any) -> bool:
    # Protocol codes may be int or str; True must not equal 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a is not None and b is not None and str(a) == str(b)


def _holds(field: dict, key: str, data: dict, siblings: list[dict]) -> bool:
    """Whether the field's ``key`` expression holds on its siblings' stored answers; unknown
    (a blank answer it reads) is false."""
    ast = condition_ast(field[key], siblings)
    return evaluate(ast, Env(data=data)) is True


def visible(field: dict, data: dict, siblings: list[dict]) -> bool:
    """Whether ``field`` is shown, given its siblings' stored answers (``siblings``: the
    fields of its form, or of its row for a field of a group)."""
    return not field.get("show_if") or _holds(field, "show_if", data, siblings)


def required(field: dict, data: dict, siblings: list[dict]) -> bool:
    """Whether ``field`` must be answered to complete the form: ``required``, or its
    ``required_if`` holds (when it is shown)."""
    if field.get("required"):
        return True
    return bool(field.get("required_if")) and _holds(field, "required_if", data, siblings)


def describe(text: str, siblings: list[dict]) -> str:
    """A show_if / required_if in words for readers (“Metastatic sites” includes Other), from
    the fields' labels and choices; the expression itself when it is more than comparisons of
    answers with values joined by and / or."""
    by_code = {f["code"]: f for f in siblings}

    def words(ast: list) -> str | None:
        if ast[0] in ("and", "or"):
            parts = [words(a) for a in ast[1:]]
            if None in parts:
                return None
            return (_(" and ") if ast[0] == "and" else _(" or ")).join(parts)
        if ast[0] not in ("cmp", "contains", "in"):
            return None
        subject = ast[1] if ast[0] != "cmp" else ast[2]
        if subject[0] != "field":
            return None
        fdef = by_code[subject[1]]
        if ast[0] == "cmp":
            if ast[1] not in ("=", "!=") or ast[3][0] != "lit":
                return None
            template = (_("“%(field)s” is %(values)s") if ast[1] == "=" else
                        _("“%(field)s” is not %(values)s"))
            values = [ast[3][1]]
        elif ast[0] == "in":
            if any(x[0] != "lit" for x in ast[2][1]):
                return None
            template = _("“%(field)s” is %(values)s")
            values = [x[1] for x in ast[2][1]]
        else:
            if ast[2][0] != "lit":
                return None
            template = _("“%(field)s” includes %(values)s")
            values = [ast[2][1]]
        return template % {"field": fdef["label"], "values": _(" or ").join(
            str(_display(fdef, _choice_value(fdef, v))) for v in values)}

    return words(condition_ast(text, siblings)) or text


def _choice_value(fdef: dict, value: Any) -> Any:
    """A literal as the stored answer it stands for (a choice's code as the protocol types it)."""
    if fdef["type"] == "multichoice":
        return [value]
    return value


def _hide_invisible(fields: list[dict], values: dict) -> set[str]:
    """Set hidden fields to None in ``values``, following chains (A shows B shows C)."""
    hidden: set[str] = set()
    changed = True
    while changed:
        changed = False
        for f in fields:
            if f["code"] not in hidden and not visible(f, values, fields):
                hidden.add(f["code"])
                values[f["code"]] = None
                changed = True
    return hidden


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _blank(posted: Any) -> bool:
    """Nothing typed in an input (a partial date's parts are a list)."""
    if isinstance(posted, (list, tuple)):
        return all(_empty(v) for v in posted)
    return _empty(posted)


def _min_rows(group: dict) -> int:
    return max(group.get("min_rows", 0), 1 if group.get("required") else 0)


def missing_required(definition: dict, data: dict) -> list[str]:
    """Paths of required answers missing from stored data ('weight', 'lesions[2].size')."""
    return _missing(definition["fields"], data or {}, "")


def _missing(fields: list[dict], data: dict, where: str) -> list[str]:
    values = dict(data)
    hidden = _hide_invisible(fields, values)
    missing = []
    for f in fields:
        path = f"{where}{f['code']}"
        if f["code"] in hidden or f.get("derived"):
            continue
        if f["type"] == "group":
            rows = values.get(f["code"]) or []
            if len(rows) < _min_rows(f):
                missing.append(path)
            for i, row in enumerate(rows):
                missing += _missing(f["fields"], row, f"{path}[{i}].")
        elif required(f, values, fields) and _empty(values.get(f["code"])) \
                and coded(values, f["code"]) is None:
            missing.append(path)
    return missing


# --- one small builder per field type ----------------------------------------------------------

def _number_text(x: Any) -> str:
    return format(Decimal(str(x)).normalize(), "f")


def _with_unit(fdef: dict, x: Any) -> str:
    return f"{_number_text(x)} {fdef['unit']}" if fdef.get("unit") else _number_text(x)


def _range_validators(fdef: dict) -> list:
    def at_least(value):
        if value < Decimal(str(fdef["min"])):
            raise ValidationError(_("Must be at least %(limit)s."), code="min_value",
                                  params={"limit": _with_unit(fdef, fdef["min"])})

    def at_most(value):
        if value > Decimal(str(fdef["max"])):
            raise ValidationError(_("Must be at most %(limit)s."), code="max_value",
                                  params={"limit": _with_unit(fdef, fdef["max"])})
    return ([at_least] if "min" in fdef else []) + ([at_most] if "max" in fdef else [])


def _text_input(mode: str) -> forms.TextInput:
    return forms.TextInput(attrs={"inputmode": mode, "autocomplete": "off"})


def _integer(fdef: dict, in_row: bool, today: datetime.date) -> forms.Field:
    return forms.IntegerField(required=False, widget=_text_input("numeric"),
                              validators=_range_validators(fdef),
                              error_messages={"invalid": _("Enter a whole number.")})


class DecimalCommaField(forms.Field):
    """A decimal typed as '12.5' or, the French way, '12,5'; kept exact as a Decimal."""
    pattern = re.compile(r"^([+-]?)(\d*)(?:[.,](\d*))?$")

    def __init__(self, *, decimals: int | None = None, **kwargs):
        self.decimals = decimals
        super().__init__(**kwargs)

    def to_python(self, value):
        value = (value or "").strip() if isinstance(value, str) else value
        if value in self.empty_values:
            return None
        match = self.pattern.match(str(value))
        if not match or not (match[2] or match[3]) or len(match[2] + (match[3] or "")) > 20:
            raise ValidationError(_("Enter a number, e.g. 12.5 or 12,5."), code="invalid")
        number = Decimal(f"{match[1]}{match[2] or 0}.{match[3] or 0}")
        places = max(0, -number.normalize().as_tuple().exponent)
        if self.decimals is not None and places > self.decimals:
            if self.decimals == 0:
                raise ValidationError(_("Enter a whole number."), code="decimals")
            raise ValidationError(
                ngettext_lazy("At most %(n)d decimal place.", "At most %(n)d decimal places.", "n"),
                code="decimals", params={"n": self.decimals})
        return number


def _decimal(fdef: dict, in_row: bool, today: datetime.date) -> forms.Field:
    return DecimalCommaField(decimals=fdef.get("decimals"), required=False,
                             widget=_text_input("decimal"), validators=_range_validators(fdef))


class PartialDateWidget(forms.MultiWidget):
    """Day, month and year boxes (``<name>_day``, ``_month``, ``_year``). A client that posts
    the date as one text (``<name>=2019-03``, the API) is read as such."""

    def __init__(self, attrs=None):
        super().__init__({
            "day": forms.TextInput(attrs={"inputmode": "numeric", "size": 2, "maxlength": 2,
                                          "autocomplete": "off", "aria-label": _("Day"),
                                          "placeholder": _("Day")}),
            "month": forms.Select(choices=[("", _("Month"))]
                                  + [(str(i), m) for i, m in MONTHS.items()],
                                  attrs={"aria-label": _("Month")}),
            "year": forms.TextInput(attrs={"inputmode": "numeric", "size": 4, "maxlength": 4,
                                           "autocomplete": "off", "aria-label": _("Year"),
                                           "placeholder": _("Year")}),
        }, attrs={"class": "crf-partial-date"})

    def decompress(self, value):
        if isinstance(value, (list, tuple)):
            return list(value)
        return list(parts_of(value))

    def value_from_datadict(self, data, files, name):
        if not any(f"{name}_{part}" in data for part in ("day", "month", "year")) \
                and name in data:
            return list(parts_of(data.get(name))) if parts_of(data.get(name))[2] \
                else ["", "", data.get(name)]
        return super().value_from_datadict(data, files, name)

    def value_omitted_from_data(self, data, files, name):
        return name not in data and super().value_omitted_from_data(data, files, name)


class PartialDateField(forms.Field):
    """A date whose day (and month) may be unknown, as the protocol allows (``precision``:
    ``month`` = year and month at least; ``year`` = year alone allowed). Cleaned to the stored
    ISO text: ``2019-03-12``, ``2019-03``, ``2019``."""

    def __init__(self, *, precision: str, today: datetime.date, future: bool, **kwargs):
        self.precision, self.today, self.future = precision, today, future
        super().__init__(widget=PartialDateWidget, **kwargs)

    def to_python(self, value):
        day, month, year = ([str(v or "").strip() for v in value] + ["", "", ""])[:3] \
            if isinstance(value, (list, tuple)) else ("", "", str(value or "").strip())
        if not (day or month or year):
            return None
        if not year:
            raise ValidationError(_("A day or a month needs its year."), code="no_year")
        if day and not month:
            raise ValidationError(_("A day needs its month: give the month, or leave the day "
                                    "blank."), code="day_without_month")
        if not re.fullmatch(r"[0-9]{4}", year) or year < "1800":
            raise ValidationError(_("Enter the year with 4 digits, e.g. 2019."), code="year")
        if month and (not month.isdigit() or not 1 <= int(month) <= 12):
            raise ValidationError(_("Choose a month from the list."), code="month")
        if not month and self.precision != "year":
            raise ValidationError(_("This date needs at least its month and year."),
                                  code="precision")
        if day:
            try:
                full = datetime.date(int(year), int(month), int(day) if day.isdigit() else 0)
            except ValueError:
                raise ValidationError(_("There is no day %(day)s in that month."), code="day",
                                      params={"day": day[:4]}) from None
            earliest, text = full, full.isoformat()
        else:
            earliest = datetime.date(int(year), int(month) if month else 1, 1)
            text = f"{year}-{int(month):02d}" if month else year
        if self.future and earliest > self.today:
            raise ValidationError(_("This date is in the future."), code="future")
        return text


def _date(fdef: dict, in_row: bool, today: datetime.date) -> forms.Field:
    if fdef.get("partial"):
        return PartialDateField(precision=fdef["partial"]["precision"], today=today,
                                future=bool(fdef.get("not_in_future")), required=False)

    def not_in_future(value):
        if value > today:
            raise ValidationError(_("This date is in the future."), code="future")
    return forms.DateField(
        required=False, input_formats=DATE_FORMATS, widget=DateInput(),
        validators=[not_in_future] if fdef.get("not_in_future") else [],
        error_messages={"invalid": _("Enter a valid date, as YYYY-MM-DD or DD/MM/YYYY.")})


def _choices(fdef: dict) -> list[tuple[str, str]]:
    return [(str(c["code"]), c["label"]) for c in fdef["choices"]]


def _choice(fdef: dict, in_row: bool, today: datetime.date) -> forms.Field:
    codes = {str(c["code"]): c["code"] for c in fdef["choices"]}
    radios = not in_row and len(codes) <= 5
    return forms.TypedChoiceField(
        required=False, coerce=codes.__getitem__, empty_value=None,
        choices=(_choices(fdef) if radios else [("", "—")] + _choices(fdef)),
        widget=forms.RadioSelect if radios else forms.Select,
        error_messages={"invalid_choice": _("Select a valid choice.")})


def _multichoice(fdef: dict, in_row: bool, today: datetime.date) -> forms.Field:
    codes = {str(c["code"]): c["code"] for c in fdef["choices"]}
    return forms.TypedMultipleChoiceField(
        required=False, coerce=codes.__getitem__, empty_value=None, choices=_choices(fdef),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": _("Select a valid choice.")})


YESNO = [("true", _("Yes")), ("false", _("No"))]


def _yesno(fdef: dict, in_row: bool, today: datetime.date) -> forms.Field:
    return forms.TypedChoiceField(
        required=False, coerce=lambda v: v == "true", empty_value=None,
        choices=[("", "—")] + YESNO if in_row else YESNO,
        widget=forms.Select if in_row else forms.RadioSelect,
        error_messages={"invalid_choice": _("Select a valid choice.")})


def _text(fdef: dict, in_row: bool, today: datetime.date) -> forms.Field:
    limit = fdef.get("max_length") or limits.CRF_TEXT_CHARS  # none in the protocol: the default

    def not_too_long(value):
        if limit and len(value) > limit:
            raise ValidationError(_("At most %(limit)d characters (you entered %(count)d)."),
                                  code="max_length", params={"limit": limit, "count": len(value)})
    long_text = not in_row and limit > 200
    widget = forms.Textarea(attrs={"rows": 3}) if long_text else forms.TextInput
    field = forms.CharField(required=False, empty_value=None, widget=widget,
                            validators=[not_too_long])
    field.widget.attrs["maxlength"] = str(limit)
    return field


class TermField(forms.CharField):
    """A term of a terminology, typed or picked from the page's datalist; cleaned to its label."""

    def __init__(self, *, terms: TermList | None, terminology: str, **kwargs):
        self.terms, self.terminology = terms, terminology
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        if self.terms is None:
            raise ValidationError(
                _("The term list %(terminology)s is not loaded (manage.py load_ctcae)."),
                code="no_terminology", params={"terminology": self.terminology})
        term = self.terms.find(value)
        if term is None:
            raise ValidationError(
                _("“%(text)s” is not a term of %(terminology)s: choose one from the list."),
                code="unknown_term", params={"text": value[:200], "terminology": self.terms.name})
        return term.label


def _term(fdef: dict, in_row: bool, today: datetime.date, terms: TermList | None) -> forms.Field:
    return TermField(terms=terms, terminology=fdef["terminology"], required=False,
                     empty_value=None,
                     widget=forms.TextInput(attrs={"list": datalist_id(fdef["terminology"]),
                                                   "autocomplete": "off", "maxlength": "200",
                                                   "data-term-list": fdef["terminology"],
                                                   "data-grade-field": fdef.get("grade_field", ""),
                                                   "class": "crf-term"}))


def datalist_id(terminology: str) -> str:
    return f"terms-{terminology}"


def grade_refusal(term: TermInfo, grade: Any, terminology: str):
    """Why ``grade`` is refused for ``term``, or None when the term defines it."""
    if grade is None or isinstance(grade, bool) or str(grade) in term.grades:
        return None
    return ValidationError(
        _("“%(term)s” has no grade %(grade)s in %(terminology)s: its grades are %(grades)s."),
        code="grade_not_defined",
        params={"term": term.label, "grade": grade, "terminology": terminology,
                "grades": ", ".join(str(g) for g in term.grade_numbers)})


BUILDERS = {"integer": _integer, "decimal": _decimal, "date": _date, "choice": _choice,
            "multichoice": _multichoice, "yesno": _yesno, "text": _text}


def _to_stored(fdef: dict, value: Any) -> Any:
    """A cleaned form value in its stored, JSON-serialisable form."""
    if _empty(value):
        return None
    if fdef["type"] == "decimal":
        if fdef.get("decimals") is not None:
            value = value.quantize(Decimal(1).scaleb(-fdef["decimals"]))
            return format(value, "f")
        return _number_text(value)
    if fdef["type"] == "date":
        return value if isinstance(value, str) else value.isoformat()
    if fdef["type"] == "multichoice":
        return [c["code"] for c in fdef["choices"] if any(_same(c["code"], v) for v in value)]
    return value


def _to_initial(fdef: dict, value: Any) -> Any:
    """A stored value as the widget expects it (POST-like strings for choices)."""
    if fdef["type"] == "yesno":
        return "true" if value is True else "false" if value is False else None
    if fdef["type"] == "choice":
        return str(value)
    if fdef["type"] == "multichoice":
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return value


def data_to_initial(definition: dict, data: dict) -> dict:
    """Stored data -> Django ``initial`` keyed by form field name (groups flattened)."""
    initial: dict[str, Any] = {}
    for f in definition["fields"]:
        value = (data or {}).get(f["code"])
        if f["type"] == "group":
            rows = value if isinstance(value, list) else []
            for i, row in enumerate(rows):
                initial.update({f"{f['code']}-{i}-{k}": v for k, v in
                                data_to_initial(f, row).items()})
        elif value is not None and not f.get("derived"):
            initial[f["code"]] = _to_initial(f, value)
        entry = coded(data, f["code"])
        if entry is not None and f["type"] != "group":
            initial[f["code"] + CODE_SUFFIX] = entry["code"]
            initial[f["code"] + REASON_SUFFIX] = entry.get("reason", "")
    return initial


def _as_count(text: Any) -> int:
    """A posted row count or index; an absurdly long number means 'too many', not a crash."""
    text = str(text or "")
    if not re.fullmatch("[0-9]+", text):
        return 0
    return int(text) if len(text) <= 6 else 10**6


# --- the form ----------------------------------------------------------------------------------

@dataclass
class Cell:
    """One answer as the template draws it: a bound field, or a read-only derived value."""
    definition: dict
    bound: forms.BoundField | None = None
    show_if: str = ""  # JSON for data-show-if: the condition's AST (trials/expressions.py)
    condition: str = ""  # the same rule in words, for pages without JavaScript
    required_if: str = ""  # JSON for data-required-if: the AST of ``required_if``
    required_condition: str = ""  # ``required_if`` in words
    display: str = ""  # derived fields only
    term: TermInfo | None = None  # term fields: the term chosen
    free_text: str = ""  # term fields: a stored answer from before the term list, kept as typed
    grade_definitions: list[tuple[int, str]] = dc_field(default_factory=list)  # a term's grades
    missing_code: forms.BoundField | None = None  # the missing-data code, when allowed
    missing_reason: forms.BoundField | None = None  # its reason, when the protocol asks one
    is_group = False

    @property
    def use_fieldset(self) -> bool:
        return bool(self.bound and self.bound.use_fieldset)


@dataclass
class Row:
    index: int | str
    cells: list[Cell]
    spare: bool = False  # a blank row offered only for pages without JavaScript
    is_template: bool = False


@dataclass
class GroupItem:
    definition: dict
    name: str  # html name base of the rows, e.g. 'crf-lesions' for 'crf-lesions-0-size'
    placeholder: forms.BoundField  # carries the group-level errors
    total: forms.BoundField
    rows: list[Row] = dc_field(default_factory=list)
    show_if: str = ""
    condition: str = ""
    template: Row | None = None  # the blank row crf.js clones, names numbered '__prefix__'
    is_group = True

    @property
    def all_rows(self) -> list[Row]:
        return self.rows + [self.template]


class CRFForm(forms.Form):
    """A CRF's form; see ``build_crf_form``. ``layout`` is what the partial template draws.
    ``check_rules``: the edit checks the page runs before sending (``crfs.checks.page_rules``),
    set by the page that knows the participant."""
    check_rules: dict | None = None

    @property
    def check_rules_id(self) -> str:
        return f"{self.prefix or 'crf'}-check-rules"

    def __init__(self, definition: dict, *, mode: str = "draft", data=None,
                 initial: dict | None = None, prefix: str | None = None,
                 today: datetime.date | None = None, derivable: Iterable[str] = ()):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.definition, self.mode, self.stored_initial = definition, mode, initial or {}
        # Answers the save may derive from a source value when left blank (eligibility
        # criteria, ``crfs.eligibility.derivable``): not required here, ``save_crf`` says if
        # one is still missing after deriving.
        self.derivable = frozenset(derivable)
        self.today = today or timezone.localdate()
        self.term_lists: dict[str, TermList | None] = {
            code: term_list(code) for code in _terminologies(definition["fields"])}
        super().__init__(data=data, initial=data_to_initial(definition, self.stored_initial),
                         prefix=prefix)
        self.row_counts: dict[str, int] = {}
        self.rows_cut: dict[str, bool] = {}
        for f in definition["fields"]:
            if f["type"] == "group":
                self._add_group(f)
            elif not f.get("derived"):
                self._add(f["code"], f, in_row=False)

    def _add(self, name: str, fdef: dict, *, in_row: bool, into: dict | None = None) -> None:
        if fdef["type"] == "group":
            raise ValueError(f"group {fdef['code']!r}: groups inside groups are not supported")
        target = self.fields if into is None else into
        if name in self.fields or name in target:
            raise ValueError(f"two answers of this CRF share the form name {name!r}")
        if fdef["type"] == "term":
            field = _term(fdef, in_row, self.today, self.term_lists[fdef["terminology"]])
        else:
            field = BUILDERS[fdef["type"]](fdef, in_row, self.today)
        field.label, field.help_text = fdef["label"], fdef.get("help", "")
        target[name] = field
        codes = allowed_codes(fdef)
        if codes:
            target[name + CODE_SUFFIX] = forms.CharField(
                required=False, label=_("Missing-data code"), widget=forms.Select(
                    choices=[("", _("— (a value is given)"))]
                    + [(c, f"{CODE_LABELS[c]} ({c})") for c in codes],
                    attrs={"class": "crf-missing-code"}))
            if reason_rule(fdef) != "absent":
                target[name + REASON_SUFFIX] = forms.CharField(
                    required=False, label=_("Reason"), max_length=REASON_LIMIT,
                    widget=forms.TextInput(attrs={"class": "crf-missing-reason",
                                                  "maxlength": str(REASON_LIMIT)}))

    def _add_group(self, group: dict) -> None:
        code, limit = group["code"], group.get("max_rows", ROW_LIMIT)
        stored = len(self.stored_initial.get(code) or [])
        if self.is_bound:
            # The count, or rows sent without one (e.g. by a script): whichever says more.
            posted = [_as_count(m[1]) + 1 for k in self.data
                      if (m := re.match(re.escape(self.add_prefix(code)) + "-([0-9]+)-", k))]
            count = max(posted + [_as_count(self.data.get(self.add_prefix(f"{code}-TOTAL")))])
            # A forged or runaway count must not build thousands of fields.
            self.rows_cut[code] = count > limit + SPARE_ROWS
            count = min(count, limit + SPARE_ROWS)
        else:
            count = max(stored, _min_rows(group), 1)
            count = max(stored, min(count + SPARE_ROWS, group.get("max_rows", count + SPARE_ROWS)))
        self.row_counts[code] = count
        self.fields[code] = forms.Field(required=False, disabled=True)  # group-level errors
        self.fields[f"{code}-TOTAL"] = forms.CharField(required=False, widget=forms.HiddenInput,
                                                       initial=count)
        for i in range(count):
            for sub in group["fields"]:
                if not sub.get("derived"):
                    self._add(f"{code}-{i}-{sub['code']}", sub, in_row=True)

    # -- cleaning: fields are cleaned by Django one by one; here the answers become stored data

    def clean(self):
        cleaned = super().clean()
        fields = self.definition["fields"]
        stored = {f["code"]: (self.stored_initial.get(f["code"]) if f.get("derived")
                              else _to_stored(f, cleaned.get(f["code"])))
                  for f in fields if f["type"] != "group"}
        for code in _hide_invisible(fields, stored):
            self._forget_errors(code)
        self._refuse_stray_codes()
        self._take_codes(fields, stored, "")
        self._check_grades(fields, stored, "")
        for f in fields:
            if f["type"] == "group":
                stored[f["code"]] = self._clean_group(f) if visible(f, stored, fields) else None
                if stored[f["code"]] is None:
                    self._forget_errors(f["code"])
            elif self.mode == "complete" and stored[f["code"]] is None \
                    and required(f, stored, fields) and not f.get("derived") \
                    and visible(f, stored, fields) \
                    and f["code"] not in self.derivable and coded(stored, f["code"]) is None:
                self._require(f["code"])
        self.stored = stored
        return cleaned

    def _clean_group(self, group: dict) -> list[dict]:
        code, rows = group["code"], []
        for i in range(self.row_counts[code]):
            names = {s["code"]: f"{code}-{i}-{s['code']}" for s in group["fields"]
                     if not s.get("derived")}
            inputs = [n + suffix for n in names.values() for suffix in ("", CODE_SUFFIX)
                      if n + suffix in self.fields]
            if all(_blank(self[n].data) for n in inputs):
                continue  # a blank row is no row
            row = {s["code"]: (None if s.get("derived") else
                               _to_stored(s, self.cleaned_data.get(names[s["code"]])))
                   for s in group["fields"]}
            for sub in _hide_invisible(group["fields"], row):
                self._forget_errors(names[sub])
            self._take_codes(group["fields"], row, f"{code}-{i}-")
            self._check_grades(group["fields"], row, f"{code}-{i}-")
            if self.mode == "complete":
                for s in group["fields"]:
                    if s["code"] in names and row[s["code"]] is None \
                            and required(s, row, group["fields"]) \
                            and visible(s, row, group["fields"]) and coded(row, s["code"]) is None:
                        self._require(names[s["code"]])
            rows.append(row)
        n = group.get("max_rows", ROW_LIMIT)
        if len(rows) > n or self.rows_cut.get(code):
            self.add_error(code, ValidationError(
                ngettext_lazy("At most %(n)d row.", "At most %(n)d rows.", "n"), params={"n": n}))
        if self.mode == "complete" and len(rows) < _min_rows(group):
            n = _min_rows(group)
            self.add_error(code, ValidationError(
                ngettext_lazy("Add at least %(n)d row.", "Add at least %(n)d rows.", "n"),
                params={"n": n}))
        return rows

    def _take_codes(self, fields: list[dict], values: dict, prefix: str) -> None:
        """Move the missing-data codes posted for ``fields`` into ``values[MISSING_KEY]``:
        a code the field does not allow, a code with a value, or a code without the reason the
        protocol asks for is refused next to the answer. Hidden answers lose their code."""
        table = {}
        for f in fields:
            name = prefix + f["code"]
            if name + CODE_SUFFIX not in self.fields:
                continue
            shown = visible(f, values, fields)
            for suffix in (CODE_SUFFIX, REASON_SUFFIX):  # said next to the answer itself
                for error in self._errors.pop(name + suffix, []):
                    if shown:
                        self._refuse(name, ValidationError(error))
            if not shown:
                continue
            code = (self.cleaned_data.get(name + CODE_SUFFIX) or "").strip()
            reason = (self.cleaned_data.get(name + REASON_SUFFIX) or "").strip()
            if not code:
                continue
            allowed = allowed_codes(f)
            if code not in allowed:
                self._refuse(name, ValidationError(
                    _("“%(code)s” is not a missing-data code this answer allows (%(codes)s)."),
                    code="code_not_allowed",
                    params={"code": code[:20], "codes": ", ".join(allowed)}))
            elif values.get(f["code"]) is not None or name in self._errors:
                self._refuse(name, ValidationError(
                    _("Give either a value or a missing-data code, not both."),
                    code="code_and_value"))
            elif reason_rule(f) == "required" and not reason:
                self._refuse(name, ValidationError(
                    _("Give the reason for “%(label)s”."), code="code_reason",
                    params={"label": CODE_LABELS[code]}))
            else:
                table[f["code"]] = {"code": code, **({"reason": reason} if reason else {})}
        if table:
            values[MISSING_KEY] = table

    def _refuse_stray_codes(self) -> None:
        """A code posted for an answer that allows none (a crafted request) is refused next
        to that answer, not ignored."""
        for key in self.data if self.is_bound else ():
            if not key.endswith(CODE_SUFFIX) or not str(self.data.get(key) or "").strip():
                continue
            name = key[len(self.add_prefix("")):-len(CODE_SUFFIX)] if self.prefix \
                else key[:-len(CODE_SUFFIX)]
            if name in self.fields and name + CODE_SUFFIX not in self.fields:
                self._refuse(name, ValidationError(
                    _("This answer allows no missing-data code."), code="code_not_allowed"))

    def _refuse(self, name: str, error: ValidationError) -> None:
        if name not in self._errors:
            self.add_error(name, error)

    def _check_grades(self, fields: list[dict], values: dict, prefix: str) -> None:
        """A grade the chosen term does not define is refused, naming the term's grades."""
        for f in fields:
            if f["type"] != "term" or not f.get("grade_field"):
                continue
            terms = self.term_lists.get(f["terminology"])
            term = terms.find(values.get(f["code"])) if terms else None
            name = prefix + f["grade_field"]
            if term is None or name in self._errors or name not in self.fields:
                continue
            refusal = grade_refusal(term, values.get(f["grade_field"]), terms.name)
            if refusal is not None:
                self.add_error(name, refusal)

    def _require(self, name: str) -> None:
        if name not in self._errors:  # an invalid value already says what is wrong
            self.add_error(name, ValidationError(REQUIRED_MESSAGE, code="required"))

    def _forget_errors(self, name: str) -> None:
        """Errors on a hidden field would be invisible: its answer is discarded instead."""
        rows = re.compile(re.escape(name) + "-([0-9]+-.*|TOTAL)")
        for error_name in list(self._errors):
            if error_name == name or rows.fullmatch(error_name):
                del self._errors[error_name]

    # -- what the template draws

    @cached_property
    def layout(self) -> list[Cell | GroupItem]:
        return [self._group_item(f) if f["type"] == "group" else
                self._cell(f, f["code"], self.definition["fields"], "", self.stored_initial)
                for f in self.definition["fields"]]

    def _cell(self, fdef: dict, name: str, siblings: list[dict], row_prefix: str,
              stored: dict) -> Cell:
        cell = Cell(fdef)
        if fdef.get("derived"):
            cell.display = _display_derived(fdef, stored)
        else:
            cell.bound = self[name] if name in self.fields else \
                self._template_fields[name].get_bound_field(self, name)
            for suffix, attr in ((CODE_SUFFIX, "missing_code"), (REASON_SUFFIX, "missing_reason")):
                if name + suffix in self.fields:
                    setattr(cell, attr, self[name + suffix])
                elif name + suffix in getattr(self, "_template_fields", {}):
                    setattr(cell, attr, self._template_fields[name + suffix].get_bound_field(
                        self, name + suffix))
            self._describe_term(cell, fdef, siblings, row_prefix)
        if fdef.get("show_if"):
            # The page's evaluator (static/js/checks.js) reads the AST; within a row, a field
            # names the same row's answers.
            cell.show_if = json.dumps(condition_ast(fdef["show_if"], siblings))
            cell.condition = _("Only if %(condition)s.") % {
                "condition": describe(fdef["show_if"], siblings)}
        if fdef.get("required_if") and not fdef.get("required"):
            cell.required_if = json.dumps(condition_ast(fdef["required_if"], siblings))
            cell.required_condition = _("Required to complete the form if %(condition)s.") % {
                "condition": describe(fdef["required_if"], siblings)}
        return cell

    def _term_of(self, fdef: dict, name: str) -> tuple[TermInfo | None, str]:
        """The term answered in the form field ``name`` and the text given, as shown."""
        if name not in self.fields:
            return None, ""
        text = str(self[name].value() or "").strip()
        terms = self.term_lists.get(fdef["terminology"])
        return (terms.find(text) if terms and text else None), text

    def _describe_term(self, cell: Cell, fdef: dict, siblings: list[dict], prefix: str) -> None:
        if fdef["type"] == "term":
            cell.term, text = self._term_of(fdef, prefix + fdef["code"])
            if cell.term is None and text and not self.is_bound:
                cell.free_text = text
            return
        term_field = next((s for s in siblings if s["type"] == "term"
                           and s.get("grade_field") == fdef["code"]), None)
        if term_field is not None:
            term, _text = self._term_of(term_field, prefix + term_field["code"])
            if term is not None:
                cell.grade_definitions = [(int(g), d) for g, d in sorted(term.grades.items())]

    @property
    def datalists(self) -> list[tuple[str, TermList]]:
        """The term lists the page offers (one <datalist> each), by their element id."""
        return [(datalist_id(code), terms) for code, terms in sorted(self.term_lists.items())
                if terms is not None]

    def _group_item(self, group: dict) -> GroupItem:
        code = group["code"]
        shown = self._cell(group, code, self.definition["fields"], "", {})
        item = GroupItem(group, self.add_prefix(code), self[code], self[f"{code}-TOTAL"],
                         show_if=shown.show_if, condition=shown.condition)
        stored_rows = self.stored_initial.get(code) or []
        real_rows = max(len(stored_rows), _min_rows(group), 1)
        for i in range(self.row_counts[code]):
            row = stored_rows[i] if i < len(stored_rows) and not self.is_bound else {}
            item.rows.append(Row(i, [self._cell(s, f"{code}-{i}-{s['code']}", group["fields"],
                                                f"{code}-{i}-", row) for s in group["fields"]],
                                 spare=not self.is_bound and i >= real_rows))
        self._template_fields: dict[str, forms.Field] = {}
        for sub in group["fields"]:
            if not sub.get("derived"):
                self._add(f"{code}-__prefix__-{sub['code']}", sub, in_row=True,
                          into=self._template_fields)
        item.template = Row("__prefix__", [
            self._cell(s, f"{code}-__prefix__-{s['code']}", group["fields"],
                       f"{code}-__prefix__-", {}) for s in group["fields"]], is_template=True)
        return item


def _terminologies(fields: list[dict]) -> set[str]:
    found = set()
    for f in fields:
        if f["type"] == "term":
            found.add(f["terminology"])
        found |= _terminologies(f.get("fields", []))
    return found


def _display_derived(fdef: dict, stored: dict) -> str:
    """A derived value in words, with the reason it is empty or not evaluable when there is one
    ("Not evaluable (no assessment date: …)"). The reason is stored in English, as history
    reasons are."""
    text = _display(fdef, stored.get(fdef["code"]))
    notes = stored.get(NOTES_KEY)
    note = notes.get(fdef["code"]) if isinstance(notes, dict) else None
    if not note:
        return text
    return f"{text} ({note})" if text else str(note)


def _display(fdef: dict, value: Any) -> str:
    """A stored value in words, for read-only (derived) fields and conditions."""
    if value is None:
        return ""
    if fdef["type"] == "yesno":
        return str(YESNO[0][1] if value else YESNO[1][1])
    labels = {str(c["code"]): c["label"] for c in fdef.get("choices", [])}
    if fdef["type"] == "multichoice" and isinstance(value, list):
        return ", ".join(labels.get(str(v), str(v)) for v in value)
    value_text = labels.get(str(value), str(value))
    return f"{value_text} {fdef['unit']}" if fdef.get("unit") else value_text


def build_crf_form(definition: dict, *, mode: str = "draft", data=None,
                   initial: dict | None = None, prefix: str | None = None,
                   today: datetime.date | None = None, derivable: Iterable[str] = ()) -> CRFForm:
    """The form for one CRF definition; ``initial`` is stored data, ``data`` is request.POST;
    ``derivable``: answers the save derives when left blank."""
    return CRFForm(definition, mode=mode, data=data, initial=initial, prefix=prefix, today=today,
                   derivable=derivable)


def form_to_data(form: CRFForm) -> dict:
    """The stored form of a valid form's answers (see the module docstring)."""
    if not form.is_valid():
        raise ValueError("form_to_data() needs a valid form")
    return json.loads(json.dumps(form.stored))
