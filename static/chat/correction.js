/* "Correct" on an assistant reply in the agent console: a small form (from the page's
 * <template id="correction-template">) whose text and intent are POSTed to
 * /api/chat/messages/<id>/corrections/ and stored as training data. No inline script (CSP). */
(function () {
  "use strict";

  var root = document.getElementById("console");
  if (!root) return;

  function csrfToken() {
    var input = root.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function open(li, messageId) {
    if (li.querySelector(".correction-form")) return;
    var form = document.getElementById("correction-template").content.firstElementChild.cloneNode(true);
    var result = form.querySelector(".correction-result");
    form.querySelector(".correction-cancel").addEventListener("click", function () { form.remove(); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var url = root.getAttribute("data-correction-url").replace(/\/0\/([a-z-]*\/?)$/, "/" + messageId + "/$1");
      var body = { text: form.elements.text.value, intent: form.elements.intent.value };
      result.textContent = "Saving…";
      fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      }).then(function (r) {
        if (r.ok) { result.textContent = "Saved as training data."; form.querySelector("button[type=submit]").disabled = true; }
        else result.textContent = (r.data.error && r.data.error.message) || "Not saved.";
      }).catch(function () { result.textContent = "Not saved: the server did not answer."; });
    });
    li.appendChild(form);
    form.elements.text.focus();
  }

  window.TrellisCorrection = { open: open };
})();
