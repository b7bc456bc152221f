/* The Reports page (templates/outcomes/reports.html): follow unfinished reports.
 *
 * Progressive enhancement: without this script the page shows each report's state when
 * loaded. Here every unfinished row polls its JSON status endpoint once a second and updates
 * its progress bar, step and, when done, its download link.
 */
(function () {
  "use strict";

  function update(row, s) {
    row.querySelector(".report-label").textContent = s.label;
    row.querySelector(".report-label").classList.toggle("ok", s.status === "done");
    row.querySelector(".report-label").classList.toggle("err", s.status === "failed");
    var bar = row.querySelector(".report-progress");
    bar.value = s.progress;
    bar.textContent = s.progress + " %";
    bar.hidden = s.finished;
    row.querySelector(".report-step").textContent = s.finished ? "" : s.step;
    row.querySelector(".report-error").textContent = s.error || "";
    if (s.download) {
      var cell = row.querySelector(".report-download");
      cell.textContent = "";
      var link = document.createElement("a");
      link.href = s.download;
      link.textContent = "PDF";
      cell.appendChild(link);
    }
  }

  function follow(row) {
    var url = row.getAttribute("data-report-status");
    function poll() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (s) {
          update(row, s);
          row.setAttribute("data-finished", s.finished ? "true" : "false");
          if (!s.finished) window.setTimeout(poll, 1000);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }

  document.querySelectorAll('tr[data-report-status][data-finished="false"]').forEach(follow);
})();
