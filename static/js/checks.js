/* The protocol's expressions on the CRF page: show_if, required_if and edit checks.
 *
 * The server compiles each expression to an AST (trials/expressions.py) and is the judge; this
 * file only evaluates the SAME AST while the user types, so that a failing check shows its
 * message next to the field before the form is sent, a hard one blocks the submit, and
 * conditional fields appear and disappear. There is no parser here. The shared vectors
 * (tests/crfs/check_vectors.json) run against both evaluators.
 *
 * Values: dates are whole days since 1970-01-01, numbers are numbers, choices and texts
 * strings, yes/no booleans, multichoices arrays of strings; null is unknown (three-valued
 * logic: a comparison with an unknown side is unknown; `and` is false as soon as one side is
 * false, `or` true as soon as one side is true).
 */
(function (root) {
  "use strict";

  function dayNumber(value) {
    if (typeof value !== "string") return null;
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value.trim()) ||
            /^(\d{2})\/(\d{2})\/(\d{4})$/.exec(value.trim());
    if (!m) return null;
    var y, mo, d;
    if (m[0].indexOf("/") !== -1) { d = +m[1]; mo = +m[2]; y = +m[3]; } else { y = +m[1]; mo = +m[2]; d = +m[3]; }
    var ms = Date.UTC(y, mo - 1, d);
    var check = new Date(ms);
    if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return null;
    return Math.round(ms / 86400000);
  }

  /* A raw value (an input's text, or a stored value sent by the server) in evaluator form. */
  function coerce(value, kind) {
    if (value === null || value === undefined || value === "" ||
        (Array.isArray(value) && value.length === 0)) return null;
    if (kind === "date") return dayNumber(value);
    if (kind === "number" || kind === "days") {
      if (typeof value === "boolean") return null;
      if (typeof value === "number") return isFinite(value) ? value : null;
      var text = String(value).trim().replace(",", ".");
      if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(text)) return null;
      return parseFloat(text);
    }
    if (kind === "bool") {
      if (typeof value === "boolean") return value;
      if (value === "true") return true;
      if (value === "false") return false;
      return null;
    }
    if (kind === "multichoice") {
      return Array.isArray(value) ? value.map(String) : null;
    }
    if (Array.isArray(value) || typeof value === "boolean" || typeof value === "object") return null;
    return String(value);
  }

  function equal(a, b, kind) {
    if (kind === "choice" || kind === "text") return String(a) === String(b);
    return a === b;
  }

  /* env: {field(code, kind), row(code, kind), ref(key, kind), today: "YYYY-MM-DD"} */
  function evaluate(ast, env) {
    var op = ast[0], a, b;
    switch (op) {
      case "lit": return ast[1];
      case "date": return dayNumber(ast[1]);
      case "today": return dayNumber(env.today);
      case "field": return env.field(ast[1], ast[2]);
      case "row": return env.row(ast[1], ast[2]);
      case "ref": return env.ref(ast[1], ast[2]);
      case "and":
        a = evaluate(ast[1], env); b = evaluate(ast[2], env);
        if (a === false || b === false) return false;
        return (a === null || b === null) ? null : true;
      case "or":
        a = evaluate(ast[1], env); b = evaluate(ast[2], env);
        if (a === true || b === true) return true;
        return (a === null || b === null) ? null : false;
      case "not":
        a = evaluate(ast[1], env);
        return a === null ? null : !a;
      case "is_blank":
        return evaluate(ast[1], env) === null;
      case "in":
        a = evaluate(ast[1], env);
        if (a === null) return null;
        return ast[2][1].some(function (item) {
          return equal(a, evaluate(item, env), typeof a === "string" ? "choice" : "");
        });
    }
    var args = [];
    for (var i = 1; i < ast.length; i++) {
      if (Array.isArray(ast[i]) && ast[i][0] !== "list") args.push(evaluate(ast[i], env));
    }
    if (args.some(function (x) { return x === null; })) return null;
    switch (op) {
      case "cmp":
        a = args[0]; b = args[1];
        switch (ast[1]) {
          case "=": return equal(a, b, ast[4]);
          case "!=": return !equal(a, b, ast[4]);
          case "<": return a < b;
          case "<=": return a <= b;
          case ">": return a > b;
          case ">=": return a >= b;
        }
        break;
      case "add": return args[0] + args[1];
      case "sub": return args[0] - args[1];
      case "neg": return -args[0];
      case "abs": return Math.abs(args[0]);
      case "days_between": return args[1] - args[0];
      case "contains": return args[0].indexOf(String(args[1])) !== -1;
    }
    throw new Error("unknown expression node " + op);
  }

  /* An env over plain values (the shared test vectors): {data, row, refs, today}. */
  function valuesEnv(values) {
    return {
      field: function (code, kind) { return coerce((values.data || {})[code], kind); },
      row: function (code, kind) { return coerce((values.row || {})[code], kind); },
      ref: function (key, kind) { return coerce((values.refs || {})[key], kind); },
      today: values.today
    };
  }

  // ------------------------------------------------------------------ the page

  function inputsNamed(scope, name) {
    return scope.querySelectorAll('[name="' + CSS.escape(name) + '"]');
  }

  /* The answers given to the input(s) called `name`; a hidden field counts as unanswered. */
  function rawValue(scope, name, kind) {
    var values = [];
    var seen = false;
    inputsNamed(scope, name).forEach(function (input) {
      if (input.closest("[hidden]") || input.closest("template")) return;
      seen = true;
      if (input.type === "radio" || input.type === "checkbox") {
        if (input.checked) values.push(input.value);
      } else if (input.tagName === "SELECT") {
        Array.prototype.forEach.call(input.selectedOptions, function (option) {
          if (option.value !== "") values.push(option.value);
        });
      } else if (input.value.trim() !== "") {
        values.push(input.value.trim());
      }
    });
    if (!seen) return null;
    if (kind === "multichoice") return values;
    return values.length ? values[0] : null;
  }

  function rules(scope) {
    if (scope._checkRules !== undefined) return scope._checkRules;
    var node = scope.getAttribute("data-checks") &&
      document.getElementById(scope.getAttribute("data-checks"));
    scope._checkRules = node ? JSON.parse(node.textContent) : null;
    return scope._checkRules;
  }

  /* rowEl: the row a check runs on, or the row of a condition (rowCondition: a row field's
   * show_if / required_if, whose fields are that row's siblings). */
  function pageEnv(scope, rowEl, rowCondition) {
    var prefix = scope.getAttribute("data-prefix") || "";
    var data = rules(scope) || {};
    function nameOf(code) { return prefix ? prefix + "-" + code : code; }
    function inRow(code, kind) {
      var found = null;
      rowEl.querySelectorAll("[name]").forEach(function (input) {
        var name = input.getAttribute("name");
        if (found === null && name.slice(-(code.length + 1)) === "-" + code) found = name;
      });
      return found === null ? null : rawValue(rowEl, found, kind);
    }
    return {
      field: function (code, kind) {
        // Within a row, a condition names the answers of its own row.
        if (rowEl && rowCondition) return coerce(inRow(code, kind), kind);
        return coerce(rawValue(scope, nameOf(code), kind), kind);
      },
      row: function (code, kind) { return rowEl ? coerce(inRow(code, kind), kind) : null; },
      ref: function (key, kind) { return coerce((data.refs || {})[key], kind); },
      today: data.today || new Date().toISOString().slice(0, 10)
    };
  }

  function holds(scope, el, attr) {
    var ast = JSON.parse(el.getAttribute(attr));
    var rowEl = el.closest("tr[data-row]");
    return evaluate(ast, pageEnv(scope, rowEl, rowEl !== null)) === true;
  }

  /* show_if and required_if; repeated so that chains (A shows B shows C) settle. */
  function refreshConditions(scope) {
    var conditionals = scope.querySelectorAll("[data-show-if]");
    for (var pass = 0; pass <= conditionals.length; pass++) {
      var changed = false;
      conditionals.forEach(function (el) {
        if (el.closest("template")) return;
        var show = holds(scope, el, "data-show-if");
        if (el.hidden === show) {
          el.hidden = !show;
          changed = true;
        }
      });
      if (!changed) break;
    }
    scope.querySelectorAll("[data-required-if]").forEach(function (el) {
      if (el.closest("template")) return;
      var mark = el.querySelector("[data-required-mark]");
      if (mark) mark.hidden = !holds(scope, el, "data-required-if");
    });
  }

  /* Where a check's message goes: the field's block (a row's cell in a group). */
  function fieldBlock(scope, check, rowEl) {
    var prefix = scope.getAttribute("data-prefix") || "";
    if (rowEl) {
      var sub = check.field.split(".")[1];
      var block = null;
      rowEl.querySelectorAll("[name]").forEach(function (input) {
        var name = input.getAttribute("name");
        if (block === null && name.slice(-(sub.length + 1)) === "-" + sub) {
          block = input.closest(".crf-cell") || input.parentNode;
        }
      });
      return block;
    }
    return scope.querySelector('[data-field="' + CSS.escape(check.field) + '"]') ||
      (inputsNamed(scope, prefix ? prefix + "-" + check.field : check.field)[0] || {}).parentNode;
  }

  /* Run every check; draw the failing ones' messages; return the failing hard ones. */
  function runChecks(scope) {
    var data = rules(scope);
    scope.querySelectorAll("[data-check-message]").forEach(function (el) { el.remove(); });
    if (!data) return [];
    var failures = [];
    data.checks.forEach(function (check) {
      var rows = [null];
      if (check.group) {
        var prefix = scope.getAttribute("data-prefix") || "";
        var group = scope.querySelector('[data-group="' + CSS.escape(prefix ? prefix + "-" + check.group : check.group) + '"]');
        rows = group ? Array.prototype.slice.call(group.querySelectorAll("tbody[data-rows] > tr[data-row]")) : [];
        if (group && group.hidden) rows = [];
      }
      rows.forEach(function (rowEl) {
        var env = pageEnv(scope, rowEl, false);
        if (check.when && evaluate(check.when, env) !== true) return;
        if (evaluate(check.expect, env) !== false) return;
        var block = fieldBlock(scope, check, rowEl);
        if (!block || block.closest("[hidden]")) return;
        var p = document.createElement("p");
        p.className = "crf-check " + (check.severity === "hard" ? "errorlist" : "warn");
        p.setAttribute("data-check-message", check.code);
        p.setAttribute("data-severity", check.severity);
        p.setAttribute("role", check.severity === "hard" ? "alert" : "status");
        p.textContent = check.message;
        block.appendChild(p);
        if (check.severity === "hard") failures.push(p);
      });
    });
    return failures;
  }

  function refresh(scope) {
    refreshConditions(scope);
    runChecks(scope);
  }

  function setUp(scope) {
    if (scope.hasAttribute("data-checks-ready")) return;
    scope.setAttribute("data-checks-ready", "");
    scope.addEventListener("change", function () { refresh(scope); });
    scope.addEventListener("input", function () { refresh(scope); });
    var form = scope.closest("form");
    if (form) {
      form.addEventListener("submit", function (event) {
        var failures = runChecks(scope);
        if (failures.length) {
          event.preventDefault();
          var input = failures[0].parentNode.querySelector("input, select, textarea");
          (input || failures[0]).focus();
        }
      });
    }
    refresh(scope);
  }

  root.CTMSChecks = {
    evaluate: evaluate, coerce: coerce, dayNumber: dayNumber, valuesEnv: valuesEnv,
    refresh: refresh, setUp: setUp
  };

  function start() {
    document.querySelectorAll("[data-crf]").forEach(setUp);
  }
  if (typeof document !== "undefined") {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
})(typeof window !== "undefined" ? window : this);
