/* "Explain the score" on a document page: POST /api/sentiment/documents/<id>/explain/ (session
 * cookie + CSRF header) and show the document's words shaded by their attribution (classes
 * from mlops/explain.css, no inline styles: CSP). */
(function () {
  "use strict";
  var root = document.getElementById("explain");
  if (!root) return;
  var form = document.getElementById("explain-form");
  var $ = function (id) { return document.getElementById(id); };
  var BUCKETS = 4;

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
  function render(body) {
    var explanation = body.explanation;
    var box = $("explain-tokens");
    box.textContent = "";
    var scale = 0;
    explanation.tokens.forEach(function (t) { scale = Math.max(scale, Math.abs(t.attribution)); });
    var text = explanation.text, at = 0;
    explanation.tokens.forEach(function (t) {
      if (t.start > at) box.appendChild(document.createTextNode(text.slice(at, t.start)));
      var span = document.createElement("span");
      span.className = "attr " + bucket(t.attribution, scale);
      span.textContent = text.slice(t.start, t.end);
      span.title = (t.attribution >= 0 ? "+" : "") + t.attribution.toFixed(3);
      box.appendChild(span);
      at = t.end;
    });
    if (at < text.length) box.appendChild(document.createTextNode(text.slice(at)));
    $("explain-version").textContent = body.version;
    $("explain-label").textContent = explanation.label;
    $("explain-probability").textContent = explanation.probability.toFixed(3);
    $("explain-target-label").textContent = explanation.target;
    $("explain-target-probability").textContent = explanation.target_probability.toFixed(3);
    $("explain-method").textContent = explanation.method.replace("-", " ");
    var note = $("explain-note");
    note.textContent = body.note || "";
    note.hidden = !body.note;
    $("explain-result").hidden = false;
  }
  function errorMessage(body, status) {
    var error = body && body.error;
    if (!error) return "The server answered " + status + ".";
    return error.message || ("The server answered " + status + ".");
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var status = $("explain-status");
    var button = form.querySelector("button[type=submit]");
    var payload = {};
    if ($("explain-target").value) payload.target = $("explain-target").value;
    status.textContent = "Explaining…";
    status.className = "muted";
    button.disabled = true;
    fetch(root.getAttribute("data-explain-url"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(payload)
    })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          if (!response.ok) throw new Error(errorMessage(body, response.status));
          return body;
        });
      })
      .then(function (body) { status.textContent = ""; render(body); })
      .catch(function (err) { status.textContent = err.message; status.className = "error"; })
      .then(function () { button.disabled = false; });
  });
})();
