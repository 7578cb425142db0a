/* Trellis "recommended for you" widget: one script tag on a shop page, from any origin the
 * widget key lists.
 *
 *   <div id="trellis-recommendations"></div>
 *   <script src="https://trellis.example/static/recommend/widget.js" data-key="wk_..."
 *           data-target="trellis-recommendations" defer></script>
 *
 * Optional: data-k (items, default 6), data-title (heading), data-item (a product page:
 * similar items), data-link (URL template with {id}, default "#"), data-user and
 * data-user-signature (hex HMAC-SHA256 of the user id with the key's signing secret,
 * computed by the shop's server; without them the visitor's anonymous session is used).
 * The list is built with DOM calls and textContent only (no HTML from the network), with
 * classes the shop styles (trellis-recs, trellis-rec, trellis-rec-reason); no inline styles.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var data = script.dataset;
  var base = new URL(script.src, window.location.href).origin;
  var SESSION_KEY = "trellis-rec-session";

  function sessionId() {
    var id = null;
    try { id = window.localStorage.getItem(SESSION_KEY); } catch (e) { /* storage blocked */ }
    if (!id) {
      var bytes = new Uint8Array(12);
      window.crypto.getRandomValues(bytes);
      id = "s-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
      try { window.localStorage.setItem(SESSION_KEY, id); } catch (e) { /* per page view then */ }
    }
    return id;
  }

  function target() {
    var el = data.target && document.getElementById(data.target);
    if (el) return el;
    el = document.createElement("div");
    script.parentNode.insertBefore(el, script.nextSibling);
    return el;
  }

  function click(impressionId) {
    if (!impressionId) return;
    fetch(base + "/api/recommend/widget/clicks/", {
      method: "POST", mode: "cors", credentials: "omit", keepalive: true,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key: data.key, impression_id: impressionId })
    }).catch(function () { /* a lost click is not worth an error on the shop page */ });
  }

  function render(box, results) {
    box.textContent = "";
    var section = document.createElement("section");
    section.className = "trellis-recs";
    var heading = document.createElement("h3");
    heading.textContent = data.title || (data.item ? "You may also like" : "Recommended for you");
    section.appendChild(heading);
    var list = document.createElement("ul");
    results.forEach(function (r) {
      var li = document.createElement("li");
      li.className = "trellis-rec";
      var link = document.createElement("a");
      link.href = (data.link || "#").replace("{id}", encodeURIComponent(r.external_id));
      link.textContent = r.title;
      link.addEventListener("click", function () { click(r.impression_id); });
      var reason = document.createElement("small");
      reason.className = "trellis-rec-reason";
      reason.textContent = r.reason;
      li.appendChild(link);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(reason);
      list.appendChild(li);
    });
    section.appendChild(list);
    box.appendChild(section);
  }

  var params = new URLSearchParams({ key: data.key || "", k: data.k || "6", session: sessionId() });
  if (data.item) params.set("item", data.item);
  if (data.user && data.userSignature) { params.set("user", data.user); params.set("signature", data.userSignature); }
  var box = target();
  fetch(base + "/api/recommend/widget/recommendations/?" + params.toString(), { mode: "cors", credentials: "omit" })
    .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
    .then(function (body) { if (body.results && body.results.length) render(box, body.results); })
    .catch(function () { box.textContent = ""; });
})();
