/* The agent console (templates/chat/console.html).
 *
 * Left: the queue from ws/chat/queue/ (waiting first, by priority then wait; then
 * conversations the assistant is answering; then the agent's own), wait times ticking.
 * Right: the selected conversation from ws/chat/<uuid>/ (history, the assistant's reply token
 * by token, customer typing), Take over / Hand back / Close, the reply box (Enter sends,
 * Shift+Enter adds a line, "/shortcut" + Space, Tab or Enter inserts a saved reply), the
 * agent-assist draft once the agent has taken over, and "Correct" on assistant replies
 * (static/chat/correction.js: POSTed to the corrections API, training data).
 * Frames are the ones in the chat contract; everything from the server goes in with
 * textContent. Sockets: static/core/socket.js. No inline script or style (CSP). */
(function () {
  "use strict";

  var root = document.getElementById("console");
  if (!root || !window.TrellisSocket) return;

  var SAMPLE_UUID = "00000000-0000-0000-0000-000000000000";
  var TYPING_EVERY_MS = 2000; // at most one typing frame per 2 s while the agent types
  var TYPING_SHOWN_MS = 4000; // the customer's "typing…" hint fades after 4 s without a frame
  var GROUP = { waiting: 0, bot: 1, mine: 2, agent: 3 };
  var GROUP_LABEL = ["Waiting for a person", "Assistant answering", "Mine", "With other agents"];
  var STATUS_LABEL = { bot: "Assistant answering", waiting: "Waiting for a person", agent: "With an agent", closed: "Closed" };
  var REASON_LABEL = {
    asked: "asked for a person", out_of_scope: "out of scope", low_retrieval: "not in the knowledge base",
    angry: "upset customer", intent: "configured intent", agent: "agent took over",
  };

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    queueState: $("queue-state"), queueList: $("queue-list"), queueEmpty: $("queue-empty"),
    none: $("conv-none"), conv: $("conv"), convId: $("conv-id"), status: $("conv-status"), state: $("conv-state"),
    reason: $("conv-reason"), takeOver: $("take-over"), handBack: $("hand-back"), close: $("close-conv"),
    messages: $("conv-messages"), typing: $("conv-typing"), error: $("conv-error"),
    draftPanel: $("draft-panel"), draftStatus: $("draft-status"), draftText: $("draft-text"),
    draftSources: $("draft-sources"), draftAsk: $("draft-ask"), draftUse: $("draft-use"),
    form: $("reply-form"), reply: $("reply-text"), send: $("reply-send"), picker: $("saved-picker"),
  };
  var me = root.getAttribute("data-agent") || "";
  var savedReplies = {};
  try {
    JSON.parse($("saved-replies").textContent).forEach(function (r) { savedReplies[r.shortcut] = r.text; });
  } catch (e) { /* no saved replies */ }

  var queue = [];
  var selected = null; // public_id of the open conversation
  var conv = null;     // {status, handoff_reason, agent}
  var live = null;     // the open conversation's socket
  var bubbles = {};    // message id -> <li>
  var draftAsked = {}; // public_id -> true once a draft was requested after taking over
  var usedDraft = "";  // the draft text put in the reply box (sent unchanged: generator "draft")
  var lastTypingSent = 0, typingTimer = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function idOf(c) { return String(c.public_id || c.id || ""); }
  function agentOf(c) { return agentName(c.agent !== undefined ? c.agent : c.assigned_agent); }
  function agentName(value) {
    if (!value) return "";
    return typeof value === "string" ? value : (value.name || value.username || "");
  }
  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function showError(text) {
    els.error.textContent = text || "";
    els.error.hidden = !text;
  }

  // --- the queue ------------------------------------------------------------------------------

  function groupOf(c) {
    if (c.status === "waiting") return GROUP.waiting;
    if (c.status === "bot") return GROUP.bot;
    return agentOf(c) === me ? GROUP.mine : GROUP.agent;
  }
  function since(c) {
    if (c._since) return c._since;
    if (typeof c.waiting_s === "number") c._since = Date.now() - c.waiting_s * 1000;
    else c._since = Date.parse(c.handoff_at || c.created_at || c.last_activity_at || "") || Date.now();
    return c._since;
  }

  function sortQueue(items) {
    return items.filter(function (c) { return c.status !== "closed"; }).sort(function (a, b) {
      return (groupOf(a) - groupOf(b)) || ((b.priority || 0) - (a.priority || 0)) || (since(a) - since(b));
    });
  }

  function preview(c) {
    var last = c.preview !== undefined ? c.preview : c.last_message;
    if (last && typeof last === "object") last = last.text;
    return last || "";
  }

  function queueItem(c) {
    var id = idOf(c);
    var item = el("li", "queue-item q-" + (c.status || "bot") + (id === selected ? " selected" : ""));
    item.setAttribute("data-conversation", id);
    item.setAttribute("data-status", c.status || "");
    var button = el("button");
    button.type = "button";
    button.setAttribute("aria-current", id === selected ? "true" : "false");
    var meta = el("div", "queue-meta");
    if (c.priority > 0) meta.appendChild(el("span", "queue-priority", "priority " + c.priority));
    meta.appendChild(el("span", "", STATUS_LABEL[c.status] || c.status));
    if (c.handoff_reason) meta.appendChild(el("span", "", REASON_LABEL[c.handoff_reason] || c.handoff_reason));
    var wait = el("span", "queue-wait");
    wait.setAttribute("data-since", String(since(c)));
    wait.textContent = duration(Date.now() - since(c));
    meta.appendChild(wait);
    if (agentOf(c)) meta.appendChild(el("span", "", agentOf(c)));
    button.appendChild(meta);
    button.appendChild(el("div", "queue-preview", preview(c) || (c.route ? "route " + c.route : "(no messages yet)")));
    button.addEventListener("click", function () { select(id); });
    item.appendChild(button);
    return item;
  }

  function renderQueue() {
    var items = sortQueue(queue);
    var nodes = [], group = -1;
    items.forEach(function (c) {
      var g = groupOf(c);
      if (g !== group) { group = g; nodes.push(el("li", "queue-group", GROUP_LABEL[g])); }
      nodes.push(queueItem(c));
    });
    els.queueList.replaceChildren.apply(els.queueList, nodes);
    els.queueEmpty.hidden = items.length > 0;
  }

  function tick() {
    var now = Date.now();
    els.queueList.querySelectorAll(".queue-wait").forEach(function (node) {
      node.textContent = duration(now - Number(node.getAttribute("data-since")));
    });
  }

  TrellisSocket.open(root.getAttribute("data-queue-ws"), {
    onStatus: function (state, text) { els.queueState.textContent = text; },
    onFrame: function (frame) {
      if (frame.type === "queue" && Array.isArray(frame.conversations)) {
        queue = frame.conversations;
        renderQueue();
      } else if (frame.type === "error") {
        els.queueState.textContent = "error: " + (frame.message || frame.code);
      }
    },
  });
  setInterval(tick, 1000);

  // --- the selected conversation --------------------------------------------------------------

  function mine() { return !!conv && conv.status === "agent" && agentName(conv.agent) === me; }

  function renderHeader() {
    if (!conv) return;
    els.status.textContent = STATUS_LABEL[conv.status] || conv.status;
    els.status.className = "status status-" + conv.status;
    var reason = conv.handoff_reason ? "Hand-off: " + (REASON_LABEL[conv.handoff_reason] || conv.handoff_reason) : "";
    var agent = agentName(conv.agent);
    els.reason.textContent = [reason, agent ? "Agent: " + agent : ""].filter(Boolean).join(" · ");
    var open = conv.status !== "closed";
    els.takeOver.disabled = !open || mine();
    els.handBack.disabled = !mine();
    els.close.disabled = !open;
    els.reply.disabled = !mine();
    els.send.disabled = !mine();
    els.picker.disabled = !mine();
    els.draftPanel.hidden = !mine();
    if (mine() && !draftAsked[selected]) {
      draftAsked[selected] = true;
      askDraft();
    }
  }

  function bubble(message) {
    var li = el("li", "msg msg-" + message.role);
    li.setAttribute("data-message", String(message.id));
    li.setAttribute("data-role", message.role);
    if (message.role === "system") {
      li.appendChild(el("div", "msg-text", message.text || ""));
      return li;
    }
    var who = el("div", "msg-who");
    var name = { customer: "Customer", assistant: "Assistant", agent: message.author || "Agent", system: "" }[message.role];
    if (name) who.appendChild(el("span", "", name));
    var at = message.created_at ? new Date(message.created_at) : null;
    if (at && !isNaN(at)) who.appendChild(el("span", "", at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
    if (message.intent) who.appendChild(el("span", "", "intent " + message.intent
      + (typeof message.confidence === "number" ? " " + message.confidence.toFixed(2) : "")));
    if (message.decision && message.role === "assistant") who.appendChild(el("span", "", message.decision));
    li.appendChild(who);
    li.appendChild(el("div", "msg-text", message.text || ""));
    return li;
  }

  function sourcesList(list, sources) {
    list.replaceChildren();
    (sources || []).forEach(function (s) {
      var item = el("li");
      var label = s.title + (s.heading ? " · " + s.heading : "");
      if (s.url) { var a = el("a", "", label); a.href = s.url; a.target = "_blank"; a.rel = "noopener"; item.appendChild(a); }
      else item.textContent = label;
      list.appendChild(item);
    });
  }

  function finishBubble(li, message) {
    li.className = "msg msg-" + message.role + (message.completed === false ? " msg-incomplete" : "");
    if (message.role === "assistant" && message.sources && message.sources.length) {
      var list = li.querySelector("ul.sources") || li.appendChild(el("ul", "sources small"));
      sourcesList(list, message.sources);
    }
    if (message.role === "assistant" && message.id && !li.querySelector(".correct")) {
      var correct = el("button", "link small correct", "Correct");
      correct.type = "button";
      correct.setAttribute("aria-label", "Correct this reply");
      correct.addEventListener("click", function () { window.TrellisCorrection.open(li, message.id); });
      li.appendChild(correct);
    }
  }

  function upsert(message) {
    var existing = bubbles[message.id];
    var fresh = bubble(message);
    if (existing) { els.messages.replaceChild(fresh, existing); }
    else els.messages.appendChild(fresh);
    bubbles[message.id] = fresh;
    finishBubble(fresh, message);
    els.messages.scrollTop = els.messages.scrollHeight;
  }

  function streamStart(id) {
    if (bubbles[id]) return;
    var li = bubble({ id: id, role: "assistant", text: "" });
    li.classList.add("msg-streaming");
    els.messages.appendChild(li);
    bubbles[id] = li;
  }

  function streamToken(id, text) {
    if (!bubbles[id]) streamStart(id);
    var node = bubbles[id].querySelector(".msg-text");
    node.textContent += text;
    els.messages.scrollTop = els.messages.scrollHeight;
  }

  function showTyping() {
    els.typing.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { els.typing.hidden = true; }, TYPING_SHOWN_MS);
  }

  function onConversationFrame(frame) {
    switch (frame.type) {
      case "history":
        conv = frame.conversation || conv;
        bubbles = {};
        els.messages.replaceChildren();
        (frame.messages || []).forEach(upsert);
        renderHeader();
        break;
      case "message": if (frame.message) upsert(frame.message); break;
      case "message_start": streamStart(frame.message_id); break;
      case "token": streamToken(frame.message_id, frame.text || ""); break;
      case "message_end": if (frame.message) upsert(frame.message); break;
      case "handoff":
        if (conv) { conv.status = frame.status || "waiting"; conv.handoff_reason = frame.reason || conv.handoff_reason; }
        renderHeader();
        break;
      case "status":
        if (conv) { conv.status = frame.status; conv.agent = frame.agent !== undefined ? frame.agent : conv.agent; }
        renderHeader();
        break;
      case "typing": if (frame.role === "customer") showTyping(); break;
      case "draft": showDraft(frame); break;
      case "error": showError(frame.message || frame.code); break;
      default: break;
    }
  }

  function select(id) {
    if (!id || id === selected) return;
    if (live) live.close();
    selected = id;
    conv = null;
    bubbles = {};
    usedDraft = "";
    els.messages.replaceChildren();
    els.draftText.value = "";
    els.draftSources.replaceChildren();
    els.draftStatus.textContent = "";
    els.reply.value = "";
    showError("");
    els.none.hidden = true;
    els.conv.hidden = false;
    els.convId.textContent = id.slice(0, 8);
    renderQueue();
    var path = root.getAttribute("data-conversation-ws").replace(SAMPLE_UUID, id);
    live = TrellisSocket.open(path, {
      onStatus: function (state, text) { els.state.textContent = text; },
      onFrame: function (frame, socket) { if (socket === live) onConversationFrame(frame); },
    });
  }

  function act(type) {
    showError("");
    if (!live || !live.send({ type: type })) showError("Not connected: wait for “live” and try again.");
  }

  els.takeOver.addEventListener("click", function () { act("take_over"); });
  els.handBack.addEventListener("click", function () { act("hand_back"); });
  els.close.addEventListener("click", function () {
    if (window.confirm("Close this conversation?")) act("close");
  });

  // --- agent assist ---------------------------------------------------------------------------

  function askDraft() {
    els.draftStatus.textContent = "Drafting from the knowledge base…";
    if (!live || !live.send({ type: "draft" })) els.draftStatus.textContent = "Not connected.";
  }

  function showDraft(frame) {
    els.draftText.value = frame.text || "";
    sourcesList(els.draftSources, frame.sources);
    els.draftStatus.textContent = frame.text ? "Edit it, then “Use draft”." : "No draft: nothing in the knowledge base fits.";
  }

  els.draftAsk.addEventListener("click", askDraft);
  els.draftUse.addEventListener("click", function () {
    usedDraft = els.draftText.value.trim();
    if (!usedDraft) return;
    els.reply.value = usedDraft;
    els.reply.focus();
  });

  // --- the reply box --------------------------------------------------------------------------

  // "/shortcut" at the end of the text -> the saved reply's text; true when it replaced one.
  function expandShortcut() {
    var match = /(^|\s)\/([a-z0-9_-]+)$/.exec(els.reply.value);
    if (!match || !Object.prototype.hasOwnProperty.call(savedReplies, match[2])) return false;
    els.reply.value = els.reply.value.slice(0, els.reply.value.length - match[2].length - 1) + savedReplies[match[2]];
    return true;
  }

  function sendReply() {
    var text = els.reply.value.trim();
    if (!text || !mine()) return;
    var frame = { type: "message", text: text, client_id: "agent-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8) };
    if (usedDraft && text === usedDraft) frame.generator = "draft";
    if (!live || !live.send(frame)) { showError("Not connected: your reply is still in the box."); return; }
    showError("");
    els.reply.value = "";
    usedDraft = "";
  }

  els.form.addEventListener("submit", function (event) { event.preventDefault(); sendReply(); });
  els.reply.addEventListener("keydown", function (event) {
    if (event.isComposing) return;
    if ((event.key === " " || event.key === "Tab") && expandShortcut()) { event.preventDefault(); return; }
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      if (!expandShortcut()) sendReply();
    }
  });
  els.reply.addEventListener("input", function () {
    var now = Date.now();
    if (live && mine() && now - lastTypingSent > TYPING_EVERY_MS) {
      lastTypingSent = now;
      live.send({ type: "typing" });
    }
  });
  els.picker.addEventListener("change", function () {
    var text = savedReplies[els.picker.value];
    els.picker.value = "";
    if (!text) return;
    var current = els.reply.value;
    els.reply.value = current && !/\s$/.test(current) ? current + " " + text : current + text;
    els.reply.focus();
  });

  // A link from elsewhere (?conversation=<uuid>) opens that conversation directly.
  var wanted = new URLSearchParams(window.location.search).get("conversation");
  if (wanted && /^[0-9a-f-]{32,36}$/i.test(wanted)) select(wanted.toLowerCase());
})();
