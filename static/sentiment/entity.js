/* Entity page: mean sentiment (line, left axis, -1..1), volume (bars, right axis) and the
 * daily close (line, second right axis) per bucket, from the json_script "entity-chart-data".
 * The width and basis radios submit their form on change (no inline handlers: CSP). */
(function () {
  "use strict";
  var switches = document.getElementById("series-switches");
  if (switches) {
    switches.addEventListener("change", function () { switches.submit(); });
  }
  var data = document.getElementById("entity-chart-data");
  var canvas = document.getElementById("entity-chart");
  if (!data || !canvas || typeof window.Chart === "undefined") return;
  var chart = JSON.parse(data.textContent);
  if (!chart.labels || !chart.labels.length) return;
  var datasets = [
    { type: "line", label: "mean sentiment", data: chart.mean, yAxisID: "y", borderColor: "#2f6fde",
      backgroundColor: "#2f6fde", spanGaps: false, pointRadius: 2, order: 1 },
    { type: "bar", label: "volume (mentions)", data: chart.volume, yAxisID: "volume",
      backgroundColor: "rgba(95, 107, 122, 0.35)", order: 3 }
  ];
  var scales = {
    y: { position: "left", min: -1, max: 1, title: { display: true, text: "sentiment" } },
    volume: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
              title: { display: true, text: "mentions" } },
    x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } }
  };
  if (chart.has_price) {
    datasets.push({ type: "line", label: "close", data: chart.close, yAxisID: "price", borderColor: "#d08a1c",
                    backgroundColor: "#d08a1c", spanGaps: true, pointRadius: 0, stepped: true, order: 2 });
    scales.price = { position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "close" } };
  }
  new window.Chart(canvas, {
    data: { labels: chart.labels, datasets: datasets },
    options: { responsive: true, maintainAspectRatio: false, animation: false, interaction: { mode: "index", intersect: false },
               scales: scales }
  });
})();
