/* The report page follows its report without a reload: while the report is open (waiting, queued,
   running) it asks the status endpoint every 1.5 s and shows the status, the progress, a reason and,
   once finished, the download link. It stops when the report is finished or failed. A static file
   because the Content-Security-Policy forbids inline script (templates/reports/report.html). */
(function () {
  "use strict";
  var root = document.getElementById("report-state");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-status-url");
  var INTERVAL = 1500;
  var failures = 0;

  function byId(id) { return document.getElementById(id); }

  function setText(id, text) {
    var element = byId(id);
    if (element && text !== undefined && text !== null) { element.textContent = text; }
  }

  function show(state) {
    root.setAttribute("data-status", state.status);
    root.setAttribute("data-open", state.open ? "1" : "0");
    setText("report-status", state.status_label);
    var bar = byId("report-progress");
    if (bar) {
      bar.value = state.progress;
      bar.setAttribute("aria-valuenow", String(state.progress));
      bar.textContent = state.progress + "\u00a0%";
    }
    var progressText = byId("report-progress-text");
    if (progressText) {
      progressText.textContent = progressText.textContent.replace(/^\d+/, String(state.progress));
    }
    byId("report-refresh").hidden = !state.open;
    var error = byId("report-error");
    error.hidden = !state.error;
    error.className = "alert alert-" + (state.status === "failed" ? "danger" : "warning");
    setText("report-error-text", state.error);
    if (state.download_url) {
      byId("report-download-link").setAttribute("href", state.download_url);
      setText("report-download-name", state.file_name);
      byId("report-download").hidden = false;
    }
    if (state.file_name) { setText("report-file-name", state.file_name); }
    if (state.size_label) { setText("report-size", state.size_label); }
    if (state.sha256) { setText("report-sha256", state.sha256); }
    if (state.finished_at) { setText("report-finished-at", state.finished_at); }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (state) {
        failures = 0;
        show(state);
        if (state.open) { window.setTimeout(poll, INTERVAL); }
      })
      .catch(function () {
        failures += 1;  // the server is busy or restarting: ask less often, give up after a while
        if (failures < 20) { window.setTimeout(poll, INTERVAL * Math.min(failures + 1, 8)); }
      });
  }

  if (root.getAttribute("data-open") === "1") { window.setTimeout(poll, INTERVAL); }
})();
