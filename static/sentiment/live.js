/* The analyst dashboard's live socket (ws/sentiment/live/): new alerts and newly scored
 * documents appear without a reload. Used by the overview (feed, open-alert count, recent
 * alerts) and the alert inbox (new rows). Everything from the server is inserted with
 * textContent, never as HTML; no inline script or style (CSP). The socket (reconnect,
 * backoff, close codes) is static/core/socket.js. */
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root) return;
  var FEED_MAX = 50;
  var state = document.getElementById("ws-state");
  var seenAlerts = {}, seenDocuments = {};

  function setState(text) { if (state) state.textContent = text; }
  function urlFor(template, value) { return template.replace(/\/0\/([a-z]*\/?)$/, "/" + value + "/$1"); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function link(href, text, className) { var a = el("a", className, text); a.href = href; return a; }
  function when(iso) { return (iso || "").slice(0, 16).replace("T", " "); }
  function csrfToken() {
    var input = root.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function bumpOpen(delta) {
    var counter = document.getElementById("open-alerts");
    if (!counter) return;
    var n = parseInt(counter.textContent, 10);
    counter.textContent = String((isNaN(n) ? 0 : n) + delta);
  }

  function actionForm(url, label, next) {
    var form = el("form", "inline");
    form.method = "post";
    form.action = url;
    [["csrfmiddlewaretoken", csrfToken()], ["next", next]].forEach(function (pair) {
      var input = el("input");
      input.type = "hidden"; input.name = pair[0]; input.value = pair[1];
      form.appendChild(input);
    });
    var button = el("button", "", label);
    button.type = "submit";
    form.appendChild(button);
    return form;
  }

  function alertRow(alert) {
    var row = el("tr", "alert-row status-row-open new-row");
    row.setAttribute("data-alert", String(alert.id));
    row.appendChild(el("td", "", when(alert.fired_at)));
    var entity = el("td");
    entity.appendChild(link(root.getAttribute("data-entity-url").replace("SYMBOL", encodeURIComponent(alert.entity.symbol)),
                            alert.entity.symbol));
    row.appendChild(entity);
    var message = el("td");
    message.appendChild(link(alert.url, alert.message));
    var rule = "rule " + alert.rule.name + (alert.rule.watchlist ? " (watchlist " + alert.rule.watchlist + ")" : "");
    message.appendChild(el("div", "muted small", rule));
    if (alert.documents && alert.documents.length) {
      var details = el("details");
      details.appendChild(el("summary", "", alert.documents_total + " document" + (alert.documents_total === 1 ? "" : "s")));
      var list = el("ul", "plain");
      alert.documents.forEach(function (d) {
        var item = el("li");
        item.appendChild(link(d.page, d.title || d.text));
        list.appendChild(item);
      });
      details.appendChild(list);
      message.appendChild(details);
    }
    row.appendChild(message);
    var status = el("td");
    status.appendChild(el("span", "status status-" + alert.status, alert.status));
    row.appendChild(status);
    var actions = el("td", "actions");
    var next = root.getAttribute("data-next") || "";
    if (alert.status === "open") actions.appendChild(actionForm(urlFor(root.getAttribute("data-ack-url"), alert.id), "Acknowledge", next));
    actions.appendChild(actionForm(urlFor(root.getAttribute("data-resolve-url"), alert.id), "Resolve", next));
    row.appendChild(actions);
    return row;
  }

  function onAlert(alert) {
    if (seenAlerts[alert.id] || document.querySelector('[data-alert="' + alert.id + '"]')) return;
    seenAlerts[alert.id] = true;
    if (alert.status === "open") bumpOpen(1);
    var inbox = document.querySelector("#alert-inbox tbody");
    var wanted = root.getAttribute("data-status");
    if (inbox && (wanted === "all" || wanted === alert.status)) {
      var empty = inbox.querySelector("tr.empty");
      if (empty) empty.remove();
      inbox.insertBefore(alertRow(alert), inbox.firstChild);
    }
    var recent = document.getElementById("recent-alerts");
    if (recent) {
      var placeholder = recent.querySelector("li.empty");
      if (placeholder) placeholder.remove();
      var item = el("li", "new-row");
      item.appendChild(link(alert.url, alert.message));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", "muted", when(alert.fired_at)));
      recent.insertBefore(item, recent.firstChild);
    }
  }

  function card(doc) {
    var item = el("li", "doc-card new-row label-" + (doc.label || "none"));
    item.setAttribute("data-document", String(doc.id));
    var meta = el("div", "doc-meta");
    var score = doc.label ? doc.label + (doc.value === null ? "" : " " + doc.value.toFixed(2)) : "unscored";
    meta.appendChild(el("span", "score score-" + (doc.label || "none"), score));
    meta.appendChild(document.createTextNode(" "));
    meta.appendChild(el("span", "muted", doc.when + " · " + doc.source));
    meta.appendChild(document.createTextNode(" "));
    meta.appendChild(link(doc.page, "details"));
    item.appendChild(meta);
    if (doc.title) item.appendChild(el("div", "doc-title", doc.title));
    var text = el("p", "doc-text"), at = 0;
    (doc.mentions || []).forEach(function (m) {
      if (m.start > at) text.appendChild(document.createTextNode(doc.text.slice(at, m.start)));
      var mention = link(doc.entity_pages[m.symbol] || "#", doc.text.slice(m.start, m.end), "mention");
      mention.title = m.symbol;
      text.appendChild(mention);
      at = m.end;
    });
    if (at < doc.text.length) text.appendChild(document.createTextNode(doc.text.slice(at)));
    if (doc.truncated) text.appendChild(document.createTextNode("…"));
    item.appendChild(text);
    return item;
  }

  function onDocuments(documents) {
    var feed = document.getElementById("feed");
    if (!feed) return;
    var empty = feed.querySelector("li.empty");
    if (empty) empty.remove();
    documents.slice().reverse().forEach(function (doc) { // the newest ends up first
      if (seenDocuments[doc.id] || feed.querySelector('[data-document="' + doc.id + '"]')) return;
      seenDocuments[doc.id] = true;
      feed.insertBefore(card(doc), feed.firstChild);
    });
    while (feed.children.length > FEED_MAX) feed.removeChild(feed.lastChild);
  }

  function connect() {
    window.TrellisSocket.open(root.getAttribute("data-ws"), {
      ping: true,
      onStatus: function (state, text) { setState(text); },
      onFrame: function (data) {
        if (data.type === "alert" && data.alert) onAlert(data.alert);
        else if (data.type === "documents" && Array.isArray(data.documents)) onDocuments(data.documents);
        else if (data.type === "error") setState("error: " + data.message);
      },
    });
  }

  connect();
})();
