/* Offline evaluation page: bars of Recall@K, NDCG@K and coverage per recommender (Chart.js). */
(function () {
  "use strict";
  var data = document.getElementById("evaluation-data");
  var canvas = document.getElementById("evaluation-chart");
  if (!data || !canvas || typeof window.Chart === "undefined") return;
  var chart = JSON.parse(data.textContent);
  if (!chart.rows || !chart.rows.length) return;
  var COLOURS = ["#2f6fde", "#20a07a", "#d08a1c"];
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: chart.rows.map(function (r) { return r.name; }),
      datasets: chart.metrics.map(function (metric, i) {
        return { label: metric, backgroundColor: COLOURS[i % COLOURS.length],
                 data: chart.rows.map(function (r) { return r.values[i]; }) };
      })
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false,
               scales: { y: { beginAtZero: true } } }
  });
})();
