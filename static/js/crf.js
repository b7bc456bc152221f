/* CRF forms (templates/outcomes/_crf_fields.html): conditional fields and repeatable rows.
 *
 * Progressive enhancement only. Without this script every field is shown and groups offer spare
 * blank rows; the server validates everything and discards answers to fields that show_if hides.
 * Here we only hide what the server would ignore, and add/remove rows, keeping the
 * <group>-<i>-<code> names and the <group>-TOTAL count consistent.
 */
(function () {
  "use strict";

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  /* The answers currently given to the input(s) called `name`; a hidden field counts as unanswered. */
  function valuesOf(scope, name) {
    var values = [];
    scope.querySelectorAll('[name="' + CSS.escape(name) + '"]').forEach(function (input) {
      if (input.closest("[hidden]")) return;
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
    return values;
  }

  /* Show or hide every [data-show-if] element; repeat so that chains (A shows B shows C) settle. */
  function refresh(scope) {
    var conditionals = scope.querySelectorAll("[data-show-if]");
    for (var pass = 0; pass <= conditionals.length; pass++) {
      var changed = false;
      conditionals.forEach(function (el) {
        var rule = JSON.parse(el.getAttribute("data-show-if"));
        var show = valuesOf(scope, rule.name).some(function (value) {
          return rule.values.indexOf(value) !== -1;
        });
        if (el.hidden === show) {
          el.hidden = !show;
          changed = true;
        }
      });
      if (!changed) return;
    }
  }

  function isBlank(row) {
    return Array.prototype.every.call(row.querySelectorAll("input, select, textarea"), function (input) {
      if (input.type === "radio" || input.type === "checkbox") return !input.checked;
      return input.value.trim() === "";
    });
  }

  function setUpGroup(scope, group) {
    var base = group.getAttribute("data-group");
    var rows = group.querySelector("tbody[data-rows]");
    var template = group.querySelector("template[data-row-template]");
    var total = group.querySelector('input[name="' + CSS.escape(base + "-TOTAL") + '"]');
    var addButton = group.querySelector("[data-add-row]");
    var maxRows = parseInt(group.getAttribute("data-max-rows"), 10) || Infinity;
    var rowName = new RegExp(escapeRegExp(base) + "-(\\d+|__prefix__)-", "g");
    var renamed = ["name", "id", "for", "data-show-if", "aria-describedby"];

    function renumber() {
      var all = rows.querySelectorAll("tr[data-row]");
      all.forEach(function (row, i) {
        row.querySelectorAll("*").forEach(function (el) {
          renamed.forEach(function (attr) {
            var value = el.getAttribute(attr);
            if (value !== null) el.setAttribute(attr, value.replace(rowName, base + "-" + i + "-"));
          });
        });
        row.querySelector("[data-row-number]").textContent = String(i + 1);
        row.querySelectorAll("[data-remove-row]").forEach(function (button) { button.hidden = false; });
      });
      total.value = String(all.length);
      addButton.disabled = all.length >= maxRows;
    }

    // The spare blank rows are for pages without JavaScript; here "Add a row" replaces them.
    rows.querySelectorAll("tr[data-spare]").forEach(function (row) {
      if (isBlank(row)) row.remove();
    });
    addButton.hidden = false;
    addButton.addEventListener("click", function () {
      rows.appendChild(template.content.querySelector("tr").cloneNode(true));
      renumber();
      refresh(scope);
      var first = rows.lastElementChild.querySelector("input, select, textarea");
      if (first) first.focus();
    });
    rows.addEventListener("click", function (event) {
      var button = event.target.closest("[data-remove-row]");
      if (!button) return;
      button.closest("tr").remove();
      renumber();
      refresh(scope);
    });
    renumber();
  }

  /* A term field (type term): the grades its term does not define cannot be picked. The server
   * refuses them anyway; this only saves a round trip. */
  function followTerm(scope, input) {
    var gradeField = input.getAttribute("data-grade-field");
    var list = input.list || document.getElementById(input.getAttribute("list"));
    if (!gradeField || !list) return;
    var termCode = input.name.slice(input.name.lastIndexOf("-") + 1);
    var gradeName = input.name.slice(0, input.name.length - termCode.length) + gradeField;
    var wanted = input.value.trim().toLowerCase();
    var grades = null;
    Array.prototype.some.call(list.options, function (option) {
      if (option.value.toLowerCase() !== wanted) return false;
      grades = option.getAttribute("data-grades").split(",");
      return true;
    });
    scope.querySelectorAll('[name="' + CSS.escape(gradeName) + '"]').forEach(function (grade) {
      var options = grade.tagName === "SELECT" ? grade.options : [grade];
      Array.prototype.forEach.call(options, function (option) {
        if (option.value === "") return;
        option.disabled = grades !== null && grades.indexOf(option.value) === -1;
      });
    });
  }

  function followTerms(scope) {
    scope.querySelectorAll("input[data-term-list]").forEach(function (input) {
      followTerm(scope, input);
    });
  }

  function setUp(scope) {
    if (scope.hasAttribute("data-crf-ready")) return;
    scope.setAttribute("data-crf-ready", "");
    scope.querySelectorAll("[data-group]").forEach(function (group) { setUpGroup(scope, group); });
    scope.addEventListener("change", function () { refresh(scope); followTerms(scope); });
    scope.addEventListener("input", function () { refresh(scope); followTerms(scope); });
    refresh(scope);
    followTerms(scope);
  }

  function start() {
    document.querySelectorAll("[data-crf]").forEach(setUp);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

/* The error summary at the top of a form that failed (templates/outcomes/crf_edit.html): the
 * focus goes to it, so that a screen reader reads it first and the keyboard starts from its
 * links to the fields. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) summary.focus();
  });
})();
