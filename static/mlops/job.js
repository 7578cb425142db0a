/* Live training job page: follows ws/mlops/jobs/<id>/ and redraws progress, curves,
 * the latest dev confusion matrix and the log tail from each job snapshot.
 * Server-rendered values stay on the page when scripts or the socket are unavailable.
 * The socket (reconnect, backoff, close codes) is static/core/socket.js. */
(function () {
  "use strict";

  var root = document.getElementById("job-page");
  if (!root) return;

  var FINISHED = ["succeeded", "failed", "cancelled"];

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    status: $("job-status"), progress: $("job-progress"), percent: $("job-percent"),
    epoch: $("job-epoch"), step: $("job-step"), total: $("job-total"), state: $("ws-state"),
    error: $("job-error"), version: $("job-version"), resumed: $("job-resumed"), cancel: $("job-cancel"),
    log: $("job-log"), confusion: $("job-confusion"), cmEpoch: $("job-cm-epoch"),
  };
  var versionUrl = root.getAttribute("data-version-url") || "";
  var wsPath = root.getAttribute("data-ws-path");
  var charts = null;
  var current = null;

  function isFinished(job) { return job && FINISHED.indexOf(job.status) !== -1; }

  function label(status) {
    return status ? status.charAt(0).toUpperCase() + status.slice(1) : "";
  }

  function number(value) { return typeof value === "number" && isFinite(value) ? value : null; }

  function makeChart(canvasId, datasets, yOptions) {
    var canvas = $(canvasId);
    if (!canvas || typeof window.Chart === "undefined") return null;
    return new window.Chart(canvas, {
      type: "line",
      data: { labels: [], datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, spanGaps: true,
        interaction: { mode: "index", intersect: false },
        scales: { x: { title: { display: true, text: "epoch" } }, y: yOptions || {} },
      },
    });
  }

  function initCharts() {
    if (charts || typeof window.Chart === "undefined") return;
    charts = {
      loss: makeChart("chart-loss", [
        { label: "train loss", data: [], borderColor: "#2f6fdf", backgroundColor: "#2f6fdf", tension: 0.2 },
        { label: "held-out loss", data: [], borderColor: "#b9770e", backgroundColor: "#b9770e", tension: 0.2 },
      ]),
      f1: makeChart("chart-f1", [
        { label: "dev macro-F1", data: [], borderColor: "#1c8a4a", backgroundColor: "#1c8a4a", tension: 0.2 },
        { label: "dev accuracy", data: [], borderColor: "#5f6b7a", backgroundColor: "#5f6b7a", tension: 0.2 },
      ], { suggestedMin: 0, suggestedMax: 1 }),
    };
  }

  function renderCharts(history) {
    initCharts();
    if (!charts) return;
    var epochs = history.map(function (h) { return h.epoch; });
    var series = {
      loss: [history.map(function (h) { return number(h.train_loss); }),
             history.map(function (h) { return number(h.eval_loss); })],
      f1: [history.map(function (h) { return h.dev ? number(h.dev.macro_f1) : null; }),
           history.map(function (h) { return h.dev ? number(h.dev.accuracy) : null; })],
    };
    Object.keys(series).forEach(function (name) {
      var chart = charts[name];
      if (!chart) return;
      chart.data.labels = epochs;
      series[name].forEach(function (data, i) { chart.data.datasets[i].data = data; });
      chart.update("none");
    });
  }

  function cell(tag, text, className) {
    var node = document.createElement(tag);
    node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function renderConfusion(history) {
    var latest = null;
    for (var i = history.length - 1; i >= 0; i--) {
      if (history[i].dev && history[i].dev.confusion_matrix && history[i].dev.confusion_matrix.length) {
        latest = history[i];
        break;
      }
    }
    if (!latest || !els.confusion) return;
    var labels = latest.dev.labels || Object.keys(latest.dev.per_class || {});
    var table = document.createElement("table");
    table.className = "cm";
    var head = document.createElement("tr");
    head.appendChild(cell("th", ""));
    labels.forEach(function (l) { head.appendChild(cell("th", l)); });
    var thead = document.createElement("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var tbody = document.createElement("tbody");
    latest.dev.confusion_matrix.forEach(function (counts, row) {
      var tr = document.createElement("tr");
      tr.appendChild(cell("th", labels[row] !== undefined ? labels[row] : String(row)));
      var total = counts.reduce(function (a, b) { return a + b; }, 0) || 1;
      counts.forEach(function (n, col) {
        // Same shade classes as templates/components/_confusion_matrix.html: share of the row in tenths.
        var shade = Math.round((n / total) * 10);
        tr.appendChild(cell("td", String(n), "cm-" + (row === col ? "ok" : "bad") + "-" + shade));
      });
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    els.confusion.replaceChildren(table);
    if (els.cmEpoch) els.cmEpoch.textContent = "(epoch " + latest.epoch + ")";
  }

  function renderLog(text) {
    if (!els.log || els.log.textContent === text) return;
    var atBottom = els.log.scrollHeight - els.log.scrollTop - els.log.clientHeight < 24;
    els.log.textContent = text;
    if (atBottom) els.log.scrollTop = els.log.scrollHeight;
  }

  function render(job) {
    current = job;
    var progress = number(job.progress) || 0;
    els.status.textContent = label(job.status);
    els.status.className = "status status-" + job.status;
    els.progress.value = progress;
    els.percent.textContent = Math.round(progress * 100) + "%";
    els.epoch.textContent = job.epoch;
    els.step.textContent = job.step;
    els.total.textContent = job.total_steps || "?";
    els.error.hidden = !job.error;
    els.error.textContent = job.error || "";
    if (els.resumed) {
      els.resumed.hidden = !job.resumed_from_step;
      var span = els.resumed.querySelector("span");
      if (span) span.textContent = job.resumed_from_step;
    }
    if (job.model_version && els.version) {
      var link = els.version.querySelector("a");
      link.href = versionUrl.replace(/\/0\/$/, "/" + job.model_version + "/");
      if (link.textContent === "view" || !link.textContent) link.textContent = "version " + job.model_version;
      els.version.hidden = false;
    }
    if (els.cancel) els.cancel.hidden = isFinished(job) || job.status === "cancelling";
    var history = Array.isArray(job.metrics_history) ? job.metrics_history : [];
    renderCharts(history);
    renderConfusion(history);
    renderLog(job.log_tail || "");
    if (isFinished(job)) document.title = label(job.status) + " · Job " + job.id + " · Trellis";
  }

  function setState(text) { if (els.state) els.state.textContent = text; }

  function connect() {
    window.TrellisSocket.open(wsPath, {
      ping: true,
      reconnect: function () { return !isFinished(current); },
      onStatus: function (state, text) { setState(state === "closed" && isFinished(current) ? "finished" : text); },
      onFrame: function (data, live) {
        if (data.type === "job" && data.job) {
          render(data.job);
          if (isFinished(data.job)) live.close(); // nothing more will come
        }
        else if (data.type === "error") setState("error: " + data.message);
      },
    });
  }

  var initial = $("job-snapshot");
  if (initial) {
    try { render(JSON.parse(initial.textContent)); } catch (e) { /* keep the server-rendered page */ }
  }
  connect();
})();
