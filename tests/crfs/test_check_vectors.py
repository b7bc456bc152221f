"""The shared vectors of the expression evaluators (tests/crfs/check_vectors.json): each
expression still compiles to the AST the file holds, and the server's evaluator gives the
expected value. tests/e2e/test_edit_checks_flow.py runs the same ASTs through the page's
evaluator (static/js/checks.js) in a browser, so the two cannot drift apart."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from trials.expressions import Env, Scope, compile_expression, evaluate

VECTORS = json.loads((Path(__file__).with_name("check_vectors.json")).read_text(encoding="utf-8"))


def scope() -> Scope:
    s = VECTORS["scope"]
    return Scope(fields=s["fields"], crfs={"this": {"code": "this", "fields": s["fields"]},
                                           **s["crfs"]},
                 visits=s["visits"], anchors=set(s["anchors"]), crf_code=s["crf_code"])


def test_the_vectors_cover_every_kind_of_node_and_all_three_values():
    text = json.dumps([v["ast"] for v in VECTORS["vectors"]])
    for node in ("lit", "date", "today", "field", "row", "ref", "cmp", "and", "or", "not",
                 "add", "sub", "neg", "in", "contains", "is_blank", "days_between", "abs"):
        assert f'["{node}"' in text, node
    assert {v["expected"] for v in VECTORS["vectors"]} == {True, False, None}


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["expression"])
def test_the_python_evaluator_gives_each_expected_value(vector):
    assert compile_expression(vector["expression"], scope()).ast == vector["ast"]
    env = vector["env"]
    got = evaluate(vector["ast"], Env(data=env["data"], row=env["row"], refs=env["refs"],
                                      today=dt.date.fromisoformat(env["today"])))
    assert got == vector["expected"]
