"""The protocol files' expression language: edit checks, conditional display and requirement.

One language for ``checks[].when`` / ``checks[].expect`` and a field's ``show_if`` /
``required_if`` (docs/protocol-files.md describes it for protocol authors). Three steps:

1. ``parse(text)``: the string -> a raw syntax tree (dicts with the column of each node),
   memoized by string; a syntax error raises ``ExpressionError`` with its column.
2. ``compile_expression(text, scope)``: names resolved against the form, the protocol's other
   forms, visits and anchors (``Scope``), types checked (a date is never compared with a
   number, ``contains`` reads a multichoice, a choice is compared with one of its codes); the
   result is the evaluable AST, plain JSON lists:

       ["lit", value]          a number, 'text' or yes/no      ["date", "2021-03-01"]  ["today"]
       ["list", [values]]      literals of an ``in [..]``
       ["field", code, type]   an answer of this form          ["row", code, type]  of this row
       ["ref", key, type]      a value outside the form, read from ``refs[key]``: another
                               form's answer (``crf.field``, ``crf@visit.field``), an anchor
                               (``anchor.randomisation``), ``visit.date``, ``last_visit``
       ["cmp", op, a, b, kind] = != < <= > >=; kind: the operands' type (date, days, number…)
       ["and", a, b] ["or", a, b] ["not", a] ["add", a, b] ["sub", a, b] ["neg", a]
       ["in", a, ["list", [..]]] ["contains", a, b] ["is_blank", a] ["days_between", a, b]
       ["abs", a]

3. ``evaluate(ast, env)``: Kleene's three-valued logic: a blank or unknown value is None and
   makes a comparison None; ``and`` is False as soon as one side is False, ``or`` True as soon
   as one side is True. The page's evaluator (static/js/checks.js) evaluates the SAME AST; the
   shared vectors of tests/crfs/check_vectors.json keep the two in step.

Values: dates are whole days since 1970-01-01 (so date - date = days, date + n = date),
numbers floats, choices and texts strings, yes/no booleans, multichoices lists of strings.
``coerce`` turns a stored answer into that form; what it returns as None is "unknown" — the
one place a missing-data code (not done, unknown) or a partial date becomes unknown.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from typing import Any

EPOCH = dt.date(1970, 1, 1).toordinal()
KEYWORDS = {"and", "or", "not", "in", "contains", "yes", "no", "true", "false"}
FUNCTIONS = {"is_blank": 1, "days_between": 2, "abs": 1, "date": 1, "today": 0}
COMPARISONS = ("=", "!=", "<=", ">=", "<", ">")
NUMERIC = ("number", "days")


class ExpressionError(ValueError):
    """A syntax or type problem; ``column`` counts from 1 (0: the expression as a whole)."""

    def __init__(self, message: str, column: int = 0):
        super().__init__(message)
        self.message, self.column = message, column

    def __str__(self) -> str:
        return f"{self.message} (column {self.column})" if self.column else self.message


# --- 1. parsing --------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:@[A-Za-z0-9_]+)?(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>!=|<=|>=|[=<>+\-(),\[\]])
""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExpressionError(f"unexpected character {text[pos]!r}", pos + 1)
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group(), pos + 1))
        pos = m.end()
    out.append(("end", "", len(text) + 1))
    return out


class _Parser:
    def __init__(self, text: str):
        self.tokens, self.i = _tokens(text), 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def word(self, *words: str) -> bool:
        kind, value, _col = self.peek()
        return kind in ("name", "op") and value in words

    def expect(self, value: str) -> int:
        kind, got, col = self.take()
        if got != value:
            raise ExpressionError(f"expected {value!r}, found {got or 'the end'!r}", col)
        return col

    def parse(self) -> dict:
        node = self.or_()
        kind, value, col = self.peek()
        if kind != "end":
            raise ExpressionError(f"unexpected {value!r}", col)
        return node

    def or_(self) -> dict:
        node = self.and_()
        while self.word("or"):
            col = self.take()[2]
            node = {"op": "or", "args": [node, self.and_()], "col": col}
        return node

    def and_(self) -> dict:
        node = self.not_()
        while self.word("and"):
            col = self.take()[2]
            node = {"op": "and", "args": [node, self.not_()], "col": col}
        return node

    def not_(self) -> dict:
        if self.word("not"):
            col = self.take()[2]
            return {"op": "not", "args": [self.not_()], "col": col}
        return self.comparison()

    def comparison(self) -> dict:
        left = self.sum()
        kind, value, col = self.peek()
        if kind == "op" and value in COMPARISONS:
            self.take()
            return {"op": "cmp", "cmp": value, "args": [left, self.sum()], "col": col}
        if self.word("in"):
            self.take()
            return {"op": "in", "args": [left, self.list_()], "col": col}
        if self.word("contains"):
            self.take()
            return {"op": "contains", "args": [left, self.sum()], "col": col}
        return left

    def sum(self) -> dict:
        node = self.unary()
        while self.word("+", "-"):
            _kind, value, col = self.take()
            node = {"op": "add" if value == "+" else "sub", "args": [node, self.unary()],
                    "col": col}
        return node

    def unary(self) -> dict:
        if self.word("-"):
            col = self.take()[2]
            return {"op": "neg", "args": [self.unary()], "col": col}
        return self.primary()

    def list_(self) -> dict:
        col = self.expect("[")
        items = []
        if not self.word("]"):
            items.append(self.sum())
            while self.word(","):
                self.take()
                items.append(self.sum())
        self.expect("]")
        return {"op": "list", "args": items, "col": col}

    def primary(self) -> dict:
        kind, value, col = self.take()
        if kind == "number":
            number = float(value) if "." in value else int(value)
            return {"op": "lit", "value": number, "col": col}
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", value[1:-1])
            return {"op": "lit", "value": text, "col": col}
        if kind == "op" and value == "(":
            node = self.or_()
            self.expect(")")
            return node
        if kind == "name":
            if value in ("yes", "true"):
                return {"op": "lit", "value": True, "col": col}
            if value in ("no", "false"):
                return {"op": "lit", "value": False, "col": col}
            if value in KEYWORDS:
                raise ExpressionError(f"unexpected {value!r}", col)
            if self.word("("):
                return self.call(value, col)
            return {"op": "name", "name": value, "col": col}
        if kind == "op" and value == "[":
            raise ExpressionError("a list [..] only follows 'in'", col)
        raise ExpressionError(f"expected a value, found {value or 'the end'!r}", col)

    def call(self, name: str, col: int) -> dict:
        if name not in FUNCTIONS:
            raise ExpressionError(f"unknown function {name!r} (known: "
                                  f"{', '.join(sorted(FUNCTIONS))})", col)
        self.expect("(")
        args = []
        if not self.word(")"):
            args.append(self.or_())
            while self.word(","):
                self.take()
                args.append(self.or_())
        self.expect(")")
        if len(args) != FUNCTIONS[name]:
            raise ExpressionError(f"{name}() takes {FUNCTIONS[name]} argument(s), "
                                  f"not {len(args)}", col)
        if name == "date":
            arg = args[0]
            if arg["op"] != "lit" or not isinstance(arg["value"], str):
                raise ExpressionError("date() takes a date written 'YYYY-MM-DD'", col)
            try:
                dt.date.fromisoformat(arg["value"])
            except ValueError:
                raise ExpressionError(f"{arg['value']!r} is not a date 'YYYY-MM-DD'", arg["col"])
            return {"op": "date", "value": arg["value"], "col": col}
        if name == "today":
            return {"op": "today", "col": col}
        return {"op": "call", "name": name, "args": args, "col": col}


@functools.lru_cache(maxsize=2048)
def _parse_cached(text: str) -> dict:
    return _Parser(text).parse()


def parse(text: str) -> dict:
    """The raw syntax tree of ``text`` (memoized by string; do not mutate it)."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression must be a non-empty string")
    return _parse_cached(text)


# --- 2. names and types ------------------------------------------------------------------------

@dataclass
class Scope:
    """What names an expression may use.

    ``fields``: the fields of this form (top level, groups included); ``row``: the fields of
    the row the expression is about (a row field's show_if), or None; ``crfs``: every form of
    the protocol by code (None: no cross-form references, e.g. show_if); ``visits``: for each
    visit code, the forms planned there; ``anchors``: the anchor codes; ``crf_code``: this form's.
    """
    fields: list[dict]
    row: list[dict] | None = None
    crfs: dict[str, dict] | None = None
    visits: dict[str, list[str]] = field(default_factory=dict)
    anchors: set[str] | None = field(default_factory=set)  # None: any (a checked protocol)
    crf_code: str = ""
    outside: bool = True  # references outside the form allowed


@dataclass
class Compiled:
    ast: list
    groups: set[str]          # the groups whose rows the expression reads (at most one)
    fields: list[str]         # the answers it reads, in order ('x', 'group.y')
    refs: list[str]           # the keys it reads in ``refs``


_TYPE_OF_FIELD = {"integer": "number", "decimal": "number", "date": "date", "choice": "choice",
                  "multichoice": "multichoice", "yesno": "bool", "text": "text", "term": "text"}


@dataclass
class _T:
    kind: str                 # number days date choice multichoice bool text string list
    codes: tuple = ()         # choice codes (choice, multichoice)
    literal: Any = None       # a literal's value, to check it is one of a choice's codes
    items: tuple = ()         # the types of a list's items


def _words(t: _T) -> str:
    return {"number": "a number", "days": "a number of days", "date": "a date",
            "choice": "a choice", "multichoice": "a multichoice", "bool": "yes/no",
            "text": "a text", "string": "a text", "list": "a list"}[t.kind]


class _Checker:
    def __init__(self, scope: Scope):
        self.scope = scope
        self.groups: set[str] = set()
        self.fields: list[str] = []
        self.refs: list[str] = []

    def fail(self, message: str, node: dict):
        raise ExpressionError(message, node.get("col", 0))

    def field_node(self, fdef: dict, kind: str, code: str, node: dict) -> tuple[list, _T]:
        if fdef["type"] == "group":
            self.fail(f"{code!r} is a group of rows: name one of its fields ({code}.field)", node)
        if fdef.get("type") not in _TYPE_OF_FIELD:
            self.fail(f"{code!r} cannot be read in an expression", node)
        t = _T(_TYPE_OF_FIELD[fdef["type"]],
               tuple(str(c["code"]) for c in fdef.get("choices", [])))
        return [kind, code, t.kind], t

    def name(self, node: dict) -> tuple[list, _T]:
        name, scope = node["name"], self.scope
        head, _, rest = name.partition(".")
        own = {f["code"]: f for f in scope.fields}
        if scope.row is not None:
            row = {f["code"]: f for f in scope.row}
            if name in row:
                self.fields.append(name)
                return self.field_node(row[name], "row", name, node)
            self.fail(f"unknown field {name!r} of this row (a row's condition reads its own "
                      "row)", node)
        if "@" not in head and not rest:
            if name in own:
                self.fields.append(name)
                return self.field_node(own[name], "field", name, node)
            if name == "last_visit" and scope.outside:
                self.refs.append(name)
                return ["ref", name, "date"], _T("date")
            self.fail(f"unknown field {name!r} of this form", node)
        if "@" not in head and head in own and own[head]["type"] == "group":
            sub = {f["code"]: f for f in own[head]["fields"]}.get(rest)
            if sub is None:
                self.fail(f"unknown field {rest!r} of the group {head!r}", node)
            self.groups.add(head)
            if len(self.groups) > 1:
                self.fail("an expression reads the rows of one group only "
                          f"({', '.join(sorted(self.groups))})", node)
            self.fields.append(name)
            return self.field_node(sub, "row", rest, node)
        if not scope.outside:
            self.fail(f"{name!r}: a condition reads the answers of this form only", node)
        if head == "anchor":
            if scope.anchors is not None and rest not in scope.anchors:
                self.fail(f"unknown anchor {rest!r} (known: "
                          f"{', '.join(sorted(scope.anchors))})", node)
            self.refs.append(name)
            return ["ref", name, "date"], _T("date")
        if name == "visit.date":
            self.refs.append(name)
            return ["ref", name, "date"], _T("date")
        crf_code, _, visit = head.partition("@")
        crf = (scope.crfs or {}).get(crf_code)
        if crf is None:
            self.fail(f"unknown field or form {crf_code!r}", node)
        if crf_code == scope.crf_code:
            self.fail(f"{name!r}: name this form's own answers without the form's code", node)
        if visit:
            if visit not in scope.visits:
                self.fail(f"unknown visit {visit!r}", node)
            if crf_code not in scope.visits[visit]:
                self.fail(f"the form {crf_code!r} is not planned at the visit {visit!r}", node)
        target = {f["code"]: f for f in crf["fields"]}.get(rest)
        if target is None or "." in rest:
            self.fail(f"unknown field {rest!r} of the form {crf_code!r} (another form's "
                      "answer is read at its top level)", node)
        self.refs.append(name)
        ast, t = self.field_node(target, "ref", name, node)
        return ast, t

    def check(self, node: dict) -> tuple[list, _T]:
        op = node["op"]
        if op == "lit":
            v = node["value"]
            kind = "bool" if isinstance(v, bool) else "string" if isinstance(v, str) else "number"
            return ["lit", v], _T(kind, literal=v)
        if op == "date":
            return ["date", node["value"]], _T("date")
        if op == "today":
            return ["today"], _T("date")
        if op == "name":
            return self.name(node)
        if op in ("and", "or"):
            a, b = (self.boolean(x) for x in node["args"])
            return [op, a, b], _T("bool")
        if op == "not":
            return ["not", self.boolean(node["args"][0])], _T("bool")
        if op == "neg":
            a, ta = self.check(node["args"][0])
            if ta.kind not in NUMERIC:
                self.fail(f"cannot negate {_words(ta)}", node)
            return ["neg", a], ta
        if op in ("add", "sub"):
            return self.arithmetic(node)
        if op == "cmp":
            return self.comparison(node)
        if op == "in":
            return self.membership(node)
        if op == "contains":
            return self.contains(node)
        if op == "list":
            self.fail("a list [..] only follows 'in'", node)
        if op == "call":
            return self.call(node)
        self.fail(f"unknown node {op!r}", node)

    def boolean(self, node: dict) -> list:
        ast, t = self.check(node)
        if t.kind != "bool":
            self.fail(f"expected a condition (yes/no), found {_words(t)}", node)
        return ast

    def arithmetic(self, node: dict) -> tuple[list, _T]:
        (a, ta), (b, tb) = (self.check(x) for x in node["args"])
        sign = "+" if node["op"] == "add" else "-"
        if ta.kind in NUMERIC and tb.kind in NUMERIC:
            kind = "days" if "days" in (ta.kind, tb.kind) else "number"
        elif ta.kind == "date" and tb.kind in NUMERIC:
            kind = "date"
        elif node["op"] == "add" and ta.kind in NUMERIC and tb.kind == "date":
            kind = "date"
        elif node["op"] == "sub" and ta.kind == tb.kind == "date":
            kind = "days"
        else:
            self.fail(f"cannot compute {_words(ta)} {sign} {_words(tb)}", node)
        return [node["op"], a, b], _T(kind)

    def comparable(self, ta: _T, tb: _T, node: dict, op: str) -> str:
        """The kind both sides are compared as, or a type error."""
        if ta.kind in ("choice", "string") and tb.kind == "choice" \
                or ta.kind == "choice" and tb.kind in ("choice", "string", "number"):
            choice, other = (ta, tb) if ta.kind == "choice" else (tb, ta)
            if op not in ("=", "!="):
                self.fail(f"a choice is compared with = or != only, not {op}", node)
            if other.literal is not None and str(other.literal) not in choice.codes:
                self.fail(f"{other.literal!r} is not one of the choice's codes "
                          f"({', '.join(choice.codes)})", node)
            return "choice"
        if ta.kind in NUMERIC and tb.kind in NUMERIC:
            return "days" if "days" in (ta.kind, tb.kind) else "number"
        same = {ta.kind, tb.kind}
        if same <= {"text", "string"}:
            if op not in ("=", "!="):
                self.fail(f"a text is compared with = or != only, not {op}", node)
            return "text"
        if ta.kind == tb.kind and ta.kind in ("date", "bool"):
            if ta.kind == "bool" and op not in ("=", "!="):
                self.fail(f"yes/no is compared with = or != only, not {op}", node)
            return ta.kind
        if "multichoice" in same:
            self.fail("a multichoice is tested with 'contains', not compared", node)
        self.fail(f"cannot compare {_words(ta)} with {_words(tb)}", node)

    def comparison(self, node: dict) -> tuple[list, _T]:
        (a, ta), (b, tb) = (self.check(x) for x in node["args"])
        kind = self.comparable(ta, tb, node, node["cmp"])
        return ["cmp", node["cmp"], a, b, kind], _T("bool")

    def membership(self, node: dict) -> tuple[list, _T]:
        a, ta = self.check(node["args"][0])
        items = []
        for item in node["args"][1]["args"]:
            if item["op"] not in ("lit", "date", "neg"):
                self.fail("a list [..] holds values written out (numbers, 'texts', dates)", item)
            ast, t = self.check(item)
            self.comparable(ta, t, item, "=")
            items.append(ast)
        return ["in", a, ["list", items]], _T("bool")

    def contains(self, node: dict) -> tuple[list, _T]:
        (a, ta), (b, tb) = (self.check(x) for x in node["args"])
        if ta.kind != "multichoice":
            self.fail(f"'contains' tests a multichoice field, not {_words(ta)}", node)
        if tb.kind not in ("string", "number", "choice"):
            self.fail(f"'contains' takes a choice code, not {_words(tb)}", node)
        if tb.literal is not None and str(tb.literal) not in ta.codes:
            self.fail(f"{tb.literal!r} is not one of the field's codes ({', '.join(ta.codes)})",
                      node)
        return ["contains", a, b], _T("bool")

    def call(self, node: dict) -> tuple[list, _T]:
        name, args = node["name"], node["args"]
        checked = [self.check(x) for x in args]
        if name == "is_blank":
            if args[0]["op"] != "name":
                self.fail("is_blank() takes a field", node)
            return ["is_blank", checked[0][0]], _T("bool")
        if name == "days_between":
            if any(t.kind != "date" for _a, t in checked):
                self.fail("days_between() takes two dates", node)
            return ["days_between", checked[0][0], checked[1][0]], _T("days")
        (a, ta), = checked
        if ta.kind not in NUMERIC:
            self.fail(f"abs() takes a number, not {_words(ta)}", node)
        return ["abs", a], ta


def compile_expression(text: str, scope: Scope) -> Compiled:
    """``text`` as an evaluable AST with what it reads; ``ExpressionError`` if it cannot be.
    The result is a condition (yes/no)."""
    checker = _Checker(scope)
    raw = parse(text)
    ast = checker.boolean(raw)
    return Compiled(ast, checker.groups, checker.fields, checker.refs)


@functools.lru_cache(maxsize=4096)
def _condition_cached(text: str, signature: tuple, in_row: bool) -> list:
    fields = [{"code": c, "type": t, "choices": [{"code": x} for x in codes]}
              for c, t, codes in signature]
    return compile_expression(text, Scope(fields=[] if in_row else fields,
                                          row=fields if in_row else None, outside=False)).ast


def condition_ast(text: str, siblings: list[dict], *, in_row: bool = False) -> list:
    """The AST of a ``show_if`` / ``required_if`` among ``siblings``, the fields of its form
    (of its row, for a field of a group): a condition reads the answers of its form only
    (memoized)."""
    signature = tuple((f["code"], f["type"], tuple(str(c["code"]) for c in f.get("choices", [])))
                      for f in siblings)
    return _condition_cached(text, signature, in_row)


# --- 3. evaluation -----------------------------------------------------------------------------

def day_number(value: Any) -> int | None:
    """A date ('YYYY-MM-DD' or a date) as days since 1970-01-01; None when not a full date."""
    if isinstance(value, dt.date):
        return value.toordinal() - EPOCH
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value).toordinal() - EPOCH
        except ValueError:
            return None
    return None


def coerce(value: Any, kind: str) -> Any:
    """A stored answer (or a reference's value) in the evaluator's form; None is unknown:
    blank answers, and any value that is not a value of its type (a partial date, a
    missing-data code) — the hook for the missing-data rules."""
    if value is None or value == "" or value == []:
        return None
    if kind == "date":
        return day_number(value)
    if kind in NUMERIC:
        if isinstance(value, bool):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if number == number else None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind == "multichoice":
        return [str(v) for v in value] if isinstance(value, list) else None
    if isinstance(value, (list, dict, bool)):
        return None
    return str(value)


@dataclass
class Env:
    """What an expression reads: this form's answers, the current row, outside values (by
    reference key, as stored: 'YYYY-MM-DD', numbers, codes) and today."""
    data: dict
    row: dict | None = None
    refs: dict = field(default_factory=dict)
    today: dt.date | None = None


def _equal(a: Any, b: Any, kind: str) -> bool:
    if kind in ("choice", "text"):
        return str(a) == str(b)
    return a == b


def evaluate(ast: list, env: Env) -> Any:
    """The value of ``ast``; None when unknown."""
    op = ast[0]
    if op == "lit":
        return ast[1]
    if op == "date":
        return day_number(ast[1])
    if op == "today":
        return day_number(env.today or dt.date.today())
    if op == "field":
        return coerce(env.data.get(ast[1]), ast[2])
    if op == "row":
        return coerce((env.row or {}).get(ast[1]), ast[2])
    if op == "ref":
        return coerce(env.refs.get(ast[1]), ast[2])
    if op == "and":
        a, b = evaluate(ast[1], env), evaluate(ast[2], env)
        if a is False or b is False:
            return False
        return None if a is None or b is None else True
    if op == "or":
        a, b = evaluate(ast[1], env), evaluate(ast[2], env)
        if a is True or b is True:
            return True
        return None if a is None or b is None else False
    if op == "not":
        a = evaluate(ast[1], env)
        return None if a is None else not a
    if op == "is_blank":
        return evaluate(ast[1], env) is None
    args = [evaluate(x, env) for x in ast[1:] if isinstance(x, list) and x and x[0] != "list"]
    if op == "in":
        a = evaluate(ast[1], env)
        if a is None:
            return None
        items = [evaluate(x, env) for x in ast[2][1]]
        return any(_equal(a, x, "choice" if isinstance(a, str) else "") for x in items)
    if any(x is None for x in args):
        return None
    if op == "cmp":
        a, b, kind = args[0], args[1], ast[4]
        sign = ast[1]
        if sign == "=":
            return _equal(a, b, kind)
        if sign == "!=":
            return not _equal(a, b, kind)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[sign]
    if op == "add":
        return args[0] + args[1]
    if op == "sub":
        return args[0] - args[1]
    if op == "neg":
        return -args[0]
    if op == "abs":
        return abs(args[0])
    if op == "days_between":
        return args[1] - args[0]
    if op == "contains":
        return str(args[1]) in args[0]
    raise ValueError(f"unknown expression node {op!r}")


def shortfall(ast: list, env: Env) -> int | None:
    """For a failed comparison of dates or days (``surgery_date <= anchor.randomisation + 21``):
    how many days past the limit; None for other expressions."""
    if ast[0] != "cmp" or ast[4] not in ("date", "days"):
        return None
    a, b = evaluate(ast[2], env), evaluate(ast[3], env)
    if a is None or b is None:
        return None
    gap = {"<": a - b + 1, "<=": a - b, ">": b - a + 1, ">=": b - a}.get(ast[1])
    if gap is None:
        return abs(a - b) or None
    return int(gap) if gap > 0 else None


def references(ast: Any) -> list[list]:
    """The ``ref`` nodes an AST reads (to fetch their values)."""
    if not isinstance(ast, list) or not ast:
        return []
    if ast[0] == "ref":
        return [ast]
    return [r for x in ast[1:] for r in references(x)]


# --- edit checks -------------------------------------------------------------------------------

class CheckDefinitionError(ExpressionError):
    """A problem of one key of a check (``when``, ``expect`` or ``field``)."""

    def __init__(self, key: str, error: ExpressionError):
        super().__init__(error.message, error.column)
        self.key = key


def protocol_scope(protocol: dict, crf: dict) -> Scope:
    """What the checks of ``crf`` may name in ``protocol``."""
    return Scope(fields=crf["fields"], crfs={c["code"]: c for c in protocol.get("crfs", [])},
                 visits={v["code"]: list(v.get("crfs") or []) for v in protocol.get("visits", [])},
                 anchors={"randomisation"} | {a["code"] for a in protocol.get("anchors", [])},
                 crf_code=crf["code"])


def compile_check(check: dict, scope: Scope) -> dict:
    """One ``checks[]`` entry as the engines run it: ``when`` and ``expect`` ASTs (``when``
    None: always), ``group`` (the rows it runs on, or None), ``field`` (the answer its message
    belongs to: ``code`` or ``group.code``), ``severity`` and ``message``; or
    ``CheckDefinitionError``."""
    compiled = {}
    for key in ("when", "expect"):
        if check.get(key) is None:
            compiled[key] = None
            continue
        try:
            compiled[key] = compile_expression(check[key], scope)
        except ExpressionError as exc:
            raise CheckDefinitionError(key, exc)
    parts = [c for c in compiled.values() if c is not None]
    groups = set().union(*(c.groups for c in parts))
    if len(groups) > 1:
        raise CheckDefinitionError("when", ExpressionError(
            f"a check reads the rows of one group only ({', '.join(sorted(groups))})"))
    group = next(iter(groups), None)
    target = check.get("field") or next(iter(compiled["expect"].fields), None)
    if target is None:
        raise CheckDefinitionError("field", ExpressionError(
            "'expect' reads no answer of this form: say which field shows the message"))
    head, _, sub = target.partition(".")
    own = {f["code"]: f for f in scope.fields}
    known = own.get(head)
    if sub and known is not None and known["type"] == "group":
        known = {f["code"]: f for f in known["fields"]}.get(sub)
    if known is None or known["type"] == "group" or (sub and own[head]["type"] != "group"):
        raise CheckDefinitionError("field", ExpressionError(
            f"unknown field {target!r} of this form"))
    if group and head != group:
        raise CheckDefinitionError("field", ExpressionError(
            f"the check runs on the rows of {group!r}: its message goes to a field of those rows"))
    if sub and not group:
        raise CheckDefinitionError("field", ExpressionError(
            f"{target!r} is a field of a row, and the check reads no row"))
    return {"code": check["code"], "when": compiled["when"] and compiled["when"].ast,
            "expect": compiled["expect"].ast, "group": group, "field": target,
            "severity": check.get("severity", "hard"), "message": check["message"],
            "refs": sorted({r for c in parts for r in c.refs})}
