/* Chat analytics page: three charts from the json_script "chat-analytics-data" (the same
 * object GET /api/chat/analytics/ returns). No inline scripts: the page's CSP is script-src 'self'. */
(function () {
  "use strict";
  var source = document.getElementById("chat-analytics-data");
  if (!source || typeof window.Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var options = { responsive: true, maintainAspectRatio: false, animation: false,
                  plugins: { legend: { display: false } } };

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) new window.Chart(canvas, config);
  }

  draw("chart-conversations", {
    type: "bar",
    data: { labels: data.conversations.labels,
            datasets: [{ label: "conversations", data: data.conversations.counts, backgroundColor: "#2563eb" }] },
    options: Object.assign({}, options, {
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } },
                x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } } } })
  });
  draw("chart-handoffs", {
    type: "bar",
    data: { labels: data.handoff.by_reason.map(function (r) { return r.label; }),
            datasets: [{ label: "conversations", data: data.handoff.by_reason.map(function (r) { return r.count; }),
                         backgroundColor: "#d08a1c" }] },
    options: Object.assign({}, options, { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } })
  });
  draw("chart-intents", {
    type: "bar",
    data: { labels: data.intents.top.map(function (r) { return r.intent; }),
            datasets: [{ label: "replies", data: data.intents.top.map(function (r) { return r.count; }),
                         backgroundColor: "#5f6b7a" }] },
    options: Object.assign({}, options, { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } })
  });
})();
