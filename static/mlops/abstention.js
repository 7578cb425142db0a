/* Version page: draws the abstention threshold curve (in-scope accuracy, out-of-scope
 * precision and recall per threshold) from the JSON the server put in the page.
 * The figures stay readable in the table beside it when scripts are unavailable. */
(function () {
  "use strict";

  var canvas = document.getElementById("chart-abstention");
  var source = document.getElementById("abstention-curve");
  if (!canvas || !source || typeof window.Chart === "undefined") return;
  var data = JSON.parse(source.textContent || "{}");
  var curve = Array.isArray(data.curve) ? data.curve : [];
  if (!curve.length) return;

  function series(key) {
    return curve.map(function (point) {
      return typeof point[key] === "number" ? point[key] : null;
    });
  }

  var chosen = typeof data.threshold === "number" ? data.threshold : null;
  var marker = curve.map(function (point, i) {
    var next = curve[i + 1];
    var here = chosen !== null && point.threshold <= chosen && (!next || next.threshold > chosen);
    return here ? 1 : null;
  });

  new window.Chart(canvas, {
    type: "line",
    data: {
      labels: curve.map(function (point) { return point.threshold.toFixed(2); }),
      datasets: [
        { label: "in-scope accuracy", data: series("in_scope_accuracy"), borderColor: "#1c8a4a",
          backgroundColor: "#1c8a4a", tension: 0.1, pointRadius: 0 },
        { label: "out-of-scope recall", data: series("oos_recall"), borderColor: "#b9770e",
          backgroundColor: "#b9770e", tension: 0.1, pointRadius: 0 },
        { label: "out-of-scope precision", data: series("oos_precision"), borderColor: "#2f6fdf",
          backgroundColor: "#2f6fdf", tension: 0.1, pointRadius: 0 },
        { label: "threshold in force", data: marker, borderColor: "#c0392b", backgroundColor: "#c0392b",
          showLine: false, pointRadius: 6, pointStyle: "line", rotation: 90 },
      ],
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false, spanGaps: true,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { title: { display: true, text: "threshold (abstain below)" } },
        y: { min: 0, max: 1 },
      },
    },
  });
})();
