/* Catalogue import page: polls the import's API resource until it finishes, then reloads
 * once so the server-rendered line report appears. Works without it (reload by hand). */
(function () {
  "use strict";
  var root = document.getElementById("import-page");
  if (!root) return;
  var url = root.getAttribute("data-url");
  var POLL_MS = 1000;
  var FINISHED = ["succeeded", "failed"];
  var $ = function (id) { return document.getElementById(id); };

  function show(run) {
    $("import-status").textContent = run.status;
    $("import-status").className = "status status-" + run.status;
    $("import-progress").value = run.progress;
    $("import-percent").textContent = Math.round(run.progress * 100) + "%";
    $("import-created").textContent = run.created;
    $("import-updated").textContent = run.updated;
    if (run.error) { $("import-error").textContent = run.error; $("import-error").hidden = false; }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (run) {
        show(run);
        if (FINISHED.indexOf(run.status) === -1) setTimeout(poll, POLL_MS);
        else if (root.getAttribute("data-reloaded") !== "1" && FINISHED.indexOf($("import-status").dataset.initial) === -1) {
          window.location.reload();
        }
      })
      .catch(function () { setTimeout(poll, POLL_MS * 5); });
  }

  $("import-status").dataset.initial = $("import-status").textContent.trim();
  if (FINISHED.indexOf($("import-status").dataset.initial) === -1) poll();
})();
