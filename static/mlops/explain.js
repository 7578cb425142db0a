/* "Explain a prediction" on a version page: posts the typed text to
 * POST /api/mlops/versions/<id>/explain/ (session cookie + CSRF header) and shows the text with
 * each word shaded by its attribution (CSS classes by bucket, no inline styles: CSP). */
(function () {
  "use strict";

  var root = document.getElementById("explain");
  if (!root) return;
  var form = document.getElementById("explain-form");
  var $ = function (id) { return document.getElementById(id); };
  var url = root.getAttribute("data-explain-url");
  var BUCKETS = 4; // attr-pos-1..4 / attr-neg-1..4 in explain.css

  function csrfToken() {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function bucket(value, scale) {
    if (!scale || !isFinite(value)) return "attr-0";
    var level = Math.min(BUCKETS, Math.round((Math.abs(value) / scale) * BUCKETS));
    if (level === 0) return "attr-0";
    return (value > 0 ? "attr-pos-" : "attr-neg-") + level;
  }

  function signed(value) {
    return (value >= 0 ? "+" : "") + value.toFixed(3);
  }

  function render(explanation) {
    var box = $("explain-tokens");
    box.textContent = "";
    var scale = 0;
    explanation.tokens.forEach(function (t) { scale = Math.max(scale, Math.abs(t.attribution)); });
    var text = explanation.text;
    var at = 0;
    explanation.tokens.forEach(function (t) {
      if (t.start > at) box.appendChild(document.createTextNode(text.slice(at, t.start)));
      var span = document.createElement("span");
      span.className = "attr " + bucket(t.attribution, scale);
      span.textContent = text.slice(t.start, t.end);
      span.title = signed(t.attribution);
      box.appendChild(span);
      at = t.end;
    });
    if (at < text.length) box.appendChild(document.createTextNode(text.slice(at)));
    $("explain-label").textContent = explanation.label;
    $("explain-probability").textContent = explanation.probability.toFixed(3);
    $("explain-target-label").textContent = explanation.target;
    $("explain-target-probability").textContent = explanation.target_probability.toFixed(3);
    $("explain-method").textContent = explanation.method.replace("-", " ");
    $("explain-result").hidden = false;
  }

  function errorMessage(body, status) {
    var error = body && body.error;
    if (!error) return "The server answered " + status + ".";
    var details = error.details || {};
    var first = Object.keys(details).map(function (k) { return details[k]; })[0];
    if (Array.isArray(first) && typeof first[0] === "string") return first[0];
    return error.message || ("The server answered " + status + ".");
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("explain-text").value;
    var target = $("explain-target").value;
    var status = $("explain-status");
    var button = form.querySelector("button[type=submit]");
    if (!text.trim()) return;
    var payload = { texts: [text] };
    if (target) payload.target = target;
    status.textContent = "Explaining…";
    status.className = "muted";
    button.disabled = true;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(payload),
    })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          if (!response.ok) throw new Error(errorMessage(body, response.status));
          return body;
        });
      })
      .then(function (body) {
        status.textContent = "";
        render(body.explanations[0]);
      })
      .catch(function (err) {
        status.textContent = err.message;
        status.className = "error";
      })
      .then(function () { button.disabled = false; });
  });
})();
