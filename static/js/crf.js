/* CRF forms (templates/outcomes/_crf_fields.html): conditional fields and repeatable rows.
 *
 * Progressive enhancement only. Without this script every field is shown and groups offer spare
 * blank rows; the server validates everything and discards answers to fields that show_if hides.
 * Here we add/remove rows, keeping the <group>-<i>-<code> names and the <group>-TOTAL count
 * consistent; checks.js hides what the server would ignore and runs the edit checks.
 */
(function () {
  "use strict";

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  /* Conditional fields (show_if, required_if) and edit checks: static/js/checks.js, which
   * evaluates the protocol's expressions as the server compiled them. */
  function refresh(scope) {
    if (window.CTMSChecks) window.CTMSChecks.refresh(scope);
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
    var renamed = ["name", "id", "for", "aria-describedby"];

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
    scope.addEventListener("change", function () { followTerms(scope); });
    scope.addEventListener("input", function () { followTerms(scope); });
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
