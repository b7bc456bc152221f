"""Edit checks: the protocol's ``checks`` of a CRF, run on its answers (the server's verdict).

A CRF definition may list ``checks`` written in the protocol files' expression language
(``trials/expressions.py``; docs/protocol-files.md for authors):

    checks:
      - code: surgery_within_21_days
        when: "immunonutrition_given = yes"            # optional: checked only when it holds
        expect: "surgery_date <= anchor.randomisation + 21"   # must hold, else the message
        field: surgery_date       # where the message shows (default: first answer in expect)
        severity: soft            # hard: blocks saving; soft: warns and records a deviation
        message: Surgery is later than the 21 days after randomisation the protocol allows.

An expression reading ``group.field`` runs row by row (an adverse event's end date not before
its start date), its message on that row's field. Three-valued logic: an ``expect`` that is
unknown (a blank answer, a reference not known yet) does not fail — missing answers are the
completeness rules' job — and an unknown ``when`` is false.

Hard checks block saving, with the message next to the field. Soft checks never block: the CRF
is saved, the user sees the warning, and a protocol deviation is recorded with how many days
past the limit a failed comparison of dates was (``CheckResult.days``). The values outside the
CRF (anchors, the last visit done, the visit's date, other forms' answers) are read by the
caller (``crfs.selectors.check_references``), keyed as the expressions name them. The CRF page
runs the same compiled checks in the browser (static/js/checks.js) before the form is sent.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from trials import expressions
from trials.expressions import Env, evaluate


@dataclass(frozen=True)
class CheckResult:
    code: str
    severity: str      # "hard" or "soft"
    path: str          # the field the message belongs to, e.g. "events[2].end_date"
    message: str
    days: int | None = None  # how far past the limit, for a failed comparison of dates

    @property
    def blocks(self) -> bool:
        return self.severity == "hard"


def compiled_checks(definition: dict, protocol: dict | None = None) -> list[dict]:
    """The CRF's checks as the engines run them (``trials.expressions.compile_check``).
    ``protocol``: the whole definition, for references to other forms and visits."""
    scope = expressions.protocol_scope(protocol or {"crfs": [definition]}, definition)
    if protocol is None:
        scope.anchors = None
    return [expressions.compile_check(check, scope) for check in definition.get("checks", [])]


def referenced(definition: dict, protocol: dict | None = None) -> set[str]:
    """The reference keys the CRF's checks read (``anchor.randomisation``, ``eligibility.x``)."""
    return {key for check in compiled_checks(definition, protocol) for key in check["refs"]}


def run_checks(definition: dict, data: dict, references: dict[str, Any], *,
               protocol: dict | None = None, today: dt.date | None = None) -> list[CheckResult]:
    """Every failed check of ``definition`` on ``data``; ``references``: the values outside
    the form by key (see the module docstring)."""
    results = []
    for check in compiled_checks(definition, protocol):
        rows: list[tuple[str, dict | None]] = [("", None)]
        if check["group"]:
            group = check["group"]
            rows = [(f"{group}[{i}].", row) for i, row in enumerate(data.get(group) or [])
                    if isinstance(row, dict)]
        for prefix, row in rows:
            env = Env(data=data, row=row, refs=references, today=today)
            if check["when"] is not None and evaluate(check["when"], env) is not True:
                continue
            if evaluate(check["expect"], env) is not False:
                continue
            field = check["field"].split(".", 1)[-1] if row is not None else check["field"]
            results.append(CheckResult(check["code"], check["severity"], prefix + field,
                                       check["message"],
                                       expressions.shortfall(check["expect"], env)))
    return results


def page_rules(definition: dict, protocol: dict | None, references: dict[str, Any],
               today: dt.date) -> dict | None:
    """What the CRF page's evaluator (static/js/checks.js) needs to run the checks as the user
    types: the compiled checks, the values outside the form they read, and today's date."""
    compiled = compiled_checks(definition, protocol)
    if not compiled:
        return None
    return {"checks": [{k: v for k, v in c.items() if k != "refs"} for c in compiled],
            "refs": {k: (v.isoformat() if isinstance(v, dt.date) else v)
                     for k, v in references.items()},
            "today": today.isoformat()}
