/* Trellis customer chat widget: one script tag on any site whose origin the route allows.
 *
 *   <script src="https://trellis.example/static/chat/widget.js" data-route="shop" defer></script>
 *
 * Optional: data-endpoint (the Trellis server, default the script's own origin), data-title,
 * data-greeting, data-colour (#RRGGBB): each overrides what the route says.
 *
 * No iframe, no dependencies, no build step. Everything lives in a shadow root, so the host
 * page's CSS cannot reach it, and its styles come in as a constructed stylesheet (no inline
 * <style> or style="" for a strict Content-Security-Policy to refuse). Text from the server is
 * only ever set with textContent. The conversation's token is kept in localStorage per
 * endpoint + route, so a reload reconnects (hello -> history); a dropped socket reconnects
 * with backoff. Frames: see the chat contract in README "Chat widget".
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || script.dataset.trellisChatLoaded) return;
  script.dataset.trellisChatLoaded = "1";
  var data = script.dataset;
  var COLOUR = /^#[0-9a-fA-F]{6}$/;
  var endpoint = (data.endpoint || new URL(script.src, window.location.href).origin).replace(/\/+$/, "");
  var routeKey = data.route || "default";
  var STORE = "trellis-chat:" + endpoint + ":" + routeKey;
  var CLOSE_TEXT = {
    4401: "This conversation has expired. Start a new one to keep chatting.",
    4403: "This site may not use this chat.",
    4404: "This conversation no longer exists. Start a new one to keep chatting.",
    4429: "You are sending messages too fast. Reconnecting in a moment…"
  };
  // Errors about a message just sent: it was not stored, so its text goes back to the input.
  var REFUSED_MESSAGE = { too_long: 1, empty: 1, rate_limited: 1, busy_reply: 1, invalid_message: 1 };
  var TYPING_SHOWN_MS = 4000; // an agent's typing indicator fades unless refreshed
  var TYPING_SENT_MS = 3000; // send at most one "typing" frame per this long
  var BACKOFF_MAX_MS = 30000;
  var MAX_ATTEMPTS = 8; // about two minutes of retries, then the visitor decides (send again)

  var CSS = [
    ":host { all: initial; --brand: #2563eb; --fg: #1d2330; --muted: #5f6b7a; --line: #dde3ea; }",
    "*, *::before, *::after { box-sizing: border-box; }",
    ".root { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--fg); }",
    "button { font: inherit; cursor: pointer; }",
    ":focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }",
    ".launcher { display: flex; align-items: center; gap: 8px; padding: 12px 18px; border: 0; border-radius: 999px; background: var(--brand); color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25); font-weight: 600; }",
    ".launcher .dot { display: none; width: 10px; height: 10px; border-radius: 50%; background: #fff; }",
    ".launcher.unread .dot { display: inline-block; }",
    ".panel { position: absolute; right: 0; bottom: 64px; width: min(380px, calc(100vw - 40px)); height: min(560px, calc(100vh - 110px)); display: flex; flex-direction: column; background: #fff; border: 1px solid var(--line); border-radius: 14px; box-shadow: 0 10px 36px rgba(0,0,0,.28); overflow: hidden; }",
    ".panel[hidden] { display: none; }",
    ".head { display: flex; align-items: center; gap: 8px; padding: 12px 14px; background: var(--brand); color: #fff; }",
    ".head h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 600; }",
    ".head button { border: 0; background: transparent; color: #fff; font-size: 20px; line-height: 1; padding: 4px 8px; border-radius: 6px; }",
    ".state { padding: 6px 14px; font-size: 13px; color: var(--muted); border-bottom: 1px solid var(--line); }",
    ".state:empty { display: none; }",
    ".log { flex: 1; overflow-y: auto; padding: 12px 14px; display: flex; flex-direction: column; gap: 10px; }",
    ".msg { max-width: 88%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap; word-wrap: break-word; }",
    ".msg .who { display: block; font-size: 12px; font-weight: 600; color: var(--muted); margin-bottom: 2px; }",
    ".msg.customer { align-self: flex-end; background: var(--brand); color: #fff; }",
    ".msg.customer .who { color: rgba(255,255,255,.85); }",
    ".msg.assistant, .msg.agent { align-self: flex-start; background: #f1f4f8; }",
    ".msg.agent { border-left: 3px solid var(--brand); }",
    ".msg.system, .msg.error { align-self: center; max-width: 95%; background: transparent; color: var(--muted); font-size: 13px; text-align: center; padding: 2px 6px; }",
    ".msg.error { color: #b42318; }",
    ".msg.pending { opacity: .7; }",
    ".msg.streaming .text::after { content: '▍'; margin-left: 1px; }",
    ".msg.incomplete .text::after { content: ' …'; }",
    ".sources { margin: 6px 0 0; padding: 0; list-style: none; font-size: 13px; }",
    ".sources li::before { content: '↳ '; color: var(--muted); }",
    ".sources a { color: var(--brand); }",
    ".votes { display: flex; gap: 4px; margin-top: 6px; }",
    ".votes button { border: 1px solid var(--line); background: #fff; border-radius: 6px; padding: 1px 8px; font-size: 12px; color: var(--fg); }",
    ".votes button[aria-pressed='true'] { background: var(--brand); border-color: var(--brand); color: #fff; }",
    ".typing { padding: 0 14px 6px; font-size: 13px; color: var(--muted); min-height: 1.3em; }",
    ".actions { display: flex; gap: 8px; padding: 0 14px 8px; }",
    ".actions button { border: 1px solid var(--line); background: #fff; border-radius: 999px; padding: 3px 11px; font-size: 13px; }",
    ".actions button[hidden] { display: none; }",
    ".compose { display: flex; gap: 8px; padding: 10px 14px 14px; border-top: 1px solid var(--line); }",
    ".compose textarea { flex: 1; resize: none; height: 42px; padding: 9px 10px; border: 1px solid var(--line); border-radius: 10px; font: inherit; color: inherit; }",
    ".compose button { border: 0; border-radius: 10px; padding: 0 14px; background: var(--brand); color: #fff; font-weight: 600; }",
    ".compose button:disabled, .compose textarea:disabled { opacity: .55; cursor: default; }",
    ".rating { border: 1px solid var(--line); border-radius: 10px; padding: 10px; margin: 0; display: flex; flex-direction: column; gap: 8px; }",
    ".rating legend { font-weight: 600; padding: 0 4px; }",
    ".rating .stars { display: flex; gap: 6px; }",
    ".rating label { display: flex; align-items: center; gap: 2px; }",
    ".rating input[type=text] { padding: 6px 8px; border: 1px solid var(--line); border-radius: 8px; font: inherit; }",
    ".rating button, .restart { align-self: flex-start; border: 0; border-radius: 8px; padding: 5px 12px; background: var(--brand); color: #fff; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }"
  ].join("\n");

  // --- small helpers -------------------------------------------------------------------------
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function load() {
    try { return JSON.parse(window.localStorage.getItem(STORE) || "null"); } catch (e) { return null; }
  }

  function save(value) {
    try {
      if (value) window.localStorage.setItem(STORE, JSON.stringify(value));
      else window.localStorage.removeItem(STORE);
    } catch (e) { /* storage blocked: the conversation lasts for this page view */ }
  }

  function clientId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return "w-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function safeUrl(url) {
    // Source links: http(s) only, relative ones resolved against the Trellis server.
    if (!url) return null;
    try {
      var parsed = new URL(url, endpoint + "/");
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) { return null; }
  }

  // --- state ---------------------------------------------------------------------------------
  var stored = load(); // {id, token, ws_path, title, greeting, brand_colour}
  var socket = null;
  var attempt = 0;
  var reconnectTimer = null;
  var helloDone = false;
  var stopped = false; // a close that must not reconnect (refused origin, expired token)
  var outbox = []; // customer messages not yet acknowledged: [{client_id, text, node}]
  var bubbles = {}; // message id -> bubble element
  var status = "bot";
  var starting = null;
  var lastTypingSent = 0;
  var typingTimer = null;
  var rated = false;
  var handoffWanted = false; // "Talk to a person" pressed before the socket was ready
  var agentName = null;

  // --- the DOM, in a shadow root -------------------------------------------------------------
  var host = document.createElement("div");
  host.setAttribute("data-trellis-chat", routeKey);
  var shadow = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in shadow && typeof CSSStyleSheet === "function") {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  }
  var root = el("div", "root");
  var launcher = el("button", "launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "trellis-chat-panel");
  var launcherDot = el("span", "dot");
  launcherDot.setAttribute("aria-hidden", "true");
  var launcherText = el("span", "", "Chat with us");
  launcher.appendChild(launcherDot);
  launcher.appendChild(launcherText);

  var panel = el("div", "panel");
  panel.id = "trellis-chat-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-modal", "true");
  var head = el("div", "head");
  var title = el("h2", "");
  title.id = "trellis-chat-title";
  panel.setAttribute("aria-labelledby", title.id);
  var closeButton = el("button", "", "×");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", "Close chat");
  head.appendChild(title);
  head.appendChild(closeButton);
  var stateLine = el("div", "state");
  stateLine.setAttribute("role", "status");
  var log = el("div", "log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", "Conversation");
  log.tabIndex = 0;
  var typing = el("div", "typing");
  typing.setAttribute("aria-live", "polite");
  var actions = el("div", "actions");
  var personButton = el("button", "", "Talk to a person");
  personButton.type = "button";
  var stopButton = el("button", "", "Stop answer");
  stopButton.type = "button";
  stopButton.hidden = true;
  actions.appendChild(personButton);
  actions.appendChild(stopButton);
  var compose = el("form", "compose");
  var inputLabel = el("label", "sr-only", "Your message");
  inputLabel.htmlFor = "trellis-chat-input";
  var input = el("textarea", "");
  input.id = "trellis-chat-input";
  input.rows = 1;
  input.placeholder = "Type your question…";
  var sendButton = el("button", "", "Send");
  sendButton.type = "submit";
  compose.appendChild(inputLabel);
  compose.appendChild(input);
  compose.appendChild(sendButton);
  panel.appendChild(head);
  panel.appendChild(stateLine);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(actions);
  panel.appendChild(compose);
  root.appendChild(panel);
  root.appendChild(launcher);
  shadow.appendChild(root);

  function applyLook() {
    var look = stored || {};
    var name = data.title || look.title || "Customer service";
    title.textContent = name;
    launcherText.textContent = name;
    launcher.setAttribute("aria-label", "Open chat: " + name);
    var colour = COLOUR.test(data.colour || "") ? data.colour : (COLOUR.test(look.brand_colour || "") ? look.brand_colour : null);
    if (colour) host.style.setProperty("--brand", colour); // CSSOM, which style-src does not restrict
  }

  function markUnread() {
    if (!panel.hidden || launcher.classList.contains("unread")) return;
    launcher.classList.add("unread");
    launcher.setAttribute("aria-label", launcher.getAttribute("aria-label") + " (new message)");
  }

  function setState(text) { stateLine.textContent = text || ""; }

  // --- the log -------------------------------------------------------------------------------
  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function note(text, cls) {
    var node = el("div", "msg " + (cls || "system"), text);
    log.appendChild(node);
    scrollDown();
    return node;
  }

  function greet() {
    var greeting = data.greeting || (stored && stored.greeting);
    if (greeting && !log.querySelector(".greeting")) {
      var node = el("div", "msg assistant greeting");
      node.appendChild(el("span", "text", greeting));
      log.insertBefore(node, log.firstChild);
    }
  }

  function who(message) {
    if (message.role === "agent") return message.author || "Agent";
    if (message.role === "assistant") return "Assistant";
    if (message.role === "customer") return "You";
    return "";
  }

  function bubble(message) {
    var node = el("div", "msg " + message.role);
    if (message.role !== "system") node.appendChild(el("span", "who", who(message)));
    node.appendChild(el("span", "text", message.text || ""));
    return node;
  }

  function renderSources(node, sources) {
    var old = node.querySelector(".sources");
    if (old) old.remove();
    if (!sources || !sources.length) return;
    var list = el("ul", "sources");
    list.setAttribute("aria-label", "Sources");
    sources.forEach(function (source) {
      var item = el("li", "");
      var label = source.title + (source.heading && source.heading !== source.title ? " › " + source.heading : "");
      var href = safeUrl(source.url);
      if (href) {
        var link = el("a", "", label);
        link.href = href;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        item.appendChild(link);
      } else {
        item.appendChild(el("span", "", label));
      }
      list.appendChild(item);
    });
    node.appendChild(list);
  }

  function renderVotes(node, message) {
    if (message.role !== "assistant" || !message.id || node.querySelector(".votes")) return;
    var votes = el("div", "votes");
    votes.setAttribute("role", "group");
    votes.setAttribute("aria-label", "Was this answer helpful?");
    [[true, "Helpful"], [false, "Not helpful"]].forEach(function (spec) {
      var button = el("button", "", spec[1]);
      button.type = "button";
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", function () {
        if (send({ type: "feedback", message_id: message.id, helpful: spec[0] })) {
          votes.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
          button.setAttribute("aria-pressed", "true");
        }
      });
      votes.appendChild(button);
    });
    node.appendChild(votes);
  }

  function finish(node, message) {
    node.classList.remove("streaming");
    node.removeAttribute("aria-busy");
    node.classList.toggle("incomplete", message.completed === false);
    node.querySelector(".text").textContent = message.text || "";
    renderSources(node, message.sources);
    renderVotes(node, message);
  }

  function showMessage(message) {
    if (message.role === "customer") {
      // The echo of a message sent here replaces its pending bubble (with the stored,
      // redacted text); any other customer message (another tab) is added.
      var index = -1;
      for (var i = 0; i < outbox.length; i++) {
        if ((message.client_id && outbox[i].client_id === message.client_id) || (!message.client_id && index < 0)) index = i;
      }
      if (index >= 0) {
        var sent = outbox.splice(index, 1)[0];
        sent.node.classList.remove("pending");
        sent.node.querySelector(".text").textContent = message.text;
        if (message.id) bubbles[message.id] = sent.node;
        return;
      }
    }
    if (message.id && bubbles[message.id]) {
      finish(bubbles[message.id], message);
      return;
    }
    var node = bubble(message);
    if (message.id) bubbles[message.id] = node;
    log.appendChild(node);
    if (message.role === "assistant") finish(node, message);
    if (message.role === "agent") { typing.textContent = ""; }
    scrollDown();
    if (message.role !== "customer") markUnread();
  }

  // --- status and the rating form ------------------------------------------------------------
  var STATUS_TEXT = { bot: "", waiting: "Waiting for a person to join…", closed: "This conversation is closed." };

  function setStatus(next, agent) {
    status = next;
    agentName = agent || null;
    setState(next === "agent" ? (agent ? agent + " is helping you." : "An agent is helping you.") : STATUS_TEXT[next] || "");
    personButton.hidden = next !== "bot";
    var closed = next === "closed";
    input.disabled = closed;
    sendButton.disabled = closed;
    if (closed) showRating();
  }

  function showRating() {
    if (log.querySelector(".rating, .restart")) return;
    if (!rated) {
      var form = el("form", "");
      var set = el("fieldset", "rating");
      set.appendChild(el("legend", "", "How did we do?"));
      var stars = el("div", "stars");
      for (var n = 1; n <= 5; n++) {
        var label = el("label", "");
        var radio = el("input", "");
        radio.type = "radio";
        radio.name = "rating";
        radio.value = String(n);
        radio.required = true;
        label.appendChild(radio);
        label.appendChild(el("span", "", n + (n === 1 ? " star" : " stars")));
        stars.appendChild(label);
      }
      set.appendChild(stars);
      var commentLabel = el("label", "", "Comment (optional)");
      var comment = el("input", "");
      comment.type = "text";
      comment.maxLength = 1000;
      commentLabel.appendChild(comment);
      set.appendChild(commentLabel);
      var submit = el("button", "", "Send rating");
      submit.type = "submit";
      set.appendChild(submit);
      form.appendChild(set);
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var chosen = form.querySelector("input[name=rating]:checked");
        if (!chosen) return;
        if (send({ type: "rating", rating: Number(chosen.value), comment: comment.value.trim() })) {
          rated = true;
          form.replaceWith(el("div", "msg system", "Thank you for your rating."));
          restartButton();
        }
      });
      log.appendChild(form);
    } else {
      restartButton();
    }
    scrollDown();
  }

  function restartButton() {
    var restart = el("button", "restart", "Start a new conversation");
    restart.type = "button";
    restart.addEventListener("click", function () { forget(); input.focus(); });
    log.appendChild(restart);
  }

  function forget() {
    // Drops this conversation: the next message starts a new one.
    stopped = true;
    if (socket) socket.close(1000);
    socket = null;
    stored = null;
    save(null);
    outbox = [];
    bubbles = {};
    rated = false;
    log.textContent = "";
    greet();
    setStatus("bot");
    stopped = false;
  }

  // --- the socket ----------------------------------------------------------------------------
  function socketUrl() {
    var url = new URL(stored.ws_path, endpoint + "/");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  function send(frame) {
    if (!socket || socket.readyState !== 1 || !helloDone) {
      note("Not connected yet: please try again in a moment.", "error");
      return false;
    }
    socket.send(JSON.stringify(frame));
    return true;
  }

  function connect() {
    if (!stored || stopped || (socket && socket.readyState <= 1)) return;
    clearTimeout(reconnectTimer);
    helloDone = false;
    setState(attempt ? "Reconnecting…" : "Connecting…");
    var ws = new WebSocket(socketUrl());
    socket = ws;
    ws.addEventListener("open", function () {
      ws.send(JSON.stringify({ type: "hello", token: stored.token }));
    });
    ws.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (ws === socket) onFrame(frame);
    });
    ws.addEventListener("close", function (event) {
      if (ws !== socket) return;
      socket = null;
      helloDone = false;
      onClose(event.code);
    });
  }

  function onClose(code) {
    stopButton.hidden = true;
    if (stopped) return;
    if (code === 4401 || code === 4404) {
      note(CLOSE_TEXT[code], "error");
      stored = null;
      save(null);
      setState("");
      return; // the next message starts a new conversation
    }
    if (code === 4403) {
      note(CLOSE_TEXT[code], "error");
      setState("");
      stopped = true;
      return;
    }
    if (code === 4429) note(CLOSE_TEXT[code], "error");
    attempt += 1;
    if (attempt > MAX_ATTEMPTS) {
      attempt = 0;
      setState("");
      note("The chat cannot connect right now. Send a message to try again.", "error");
      return;
    }
    var delay = Math.min(BACKOFF_MAX_MS, 1000 * Math.pow(2, attempt - 1)) * (0.75 + Math.random() / 2);
    if (code === 4429) delay = Math.max(delay, 5000);
    setState("Connection lost. Reconnecting…");
    reconnectTimer = setTimeout(connect, delay);
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "history": onHistory(frame); break;
      case "message": showMessage(frame.message || {}); break;
      case "message_start": {
        var node = bubble({ role: frame.role || "assistant", text: "" });
        node.classList.add("streaming");
        node.setAttribute("aria-busy", "true"); // read once complete, not token by token
        bubbles[frame.message_id] = node;
        log.appendChild(node);
        stopButton.hidden = false;
        scrollDown();
        break;
      }
      case "token": {
        var streaming = bubbles[frame.message_id];
        if (streaming) {
          streaming.querySelector(".text").textContent += frame.text;
          scrollDown();
        }
        break;
      }
      case "message_end": {
        var message = frame.message || {};
        var target = bubbles[message.id];
        if (target) finish(target, message);
        else showMessage(message);
        stopButton.hidden = true;
        markUnread();
        scrollDown();
        break;
      }
      case "handoff":
        setStatus(frame.status || "waiting");
        break;
      case "status":
        setStatus(frame.status, frame.agent);
        break;
      case "typing":
        if (frame.role === "agent") {
          typing.textContent = (agentName || "An agent") + " is typing…";
          clearTimeout(typingTimer);
          typingTimer = setTimeout(function () { typing.textContent = ""; }, TYPING_SHOWN_MS);
        }
        break;
      case "error": onError(frame); break;
      default: break; // frames for agents (draft, queue) and future ones
    }
  }

  function onHistory(frame) {
    helloDone = true;
    attempt = 0;
    var conversation = frame.conversation || {};
    var pending = outbox.slice();
    // The history is the truth: rebuild the log from it (a reload, a reconnect).
    bubbles = {};
    log.textContent = "";
    greet();
    (frame.messages || []).forEach(function (message) {
      var node = bubble(message);
      if (message.id) bubbles[message.id] = node;
      log.appendChild(node);
      if (message.role === "assistant") finish(node, message);
    });
    // Messages typed while disconnected are sent now; the server ignores a client_id it has.
    outbox = [];
    pending.forEach(function (item) { log.appendChild(item.node); outbox.push(item); });
    pending.forEach(function (item) { socket.send(JSON.stringify({ type: "message", text: item.text, client_id: item.client_id })); });
    setStatus(conversation.status || "bot", conversation.agent);
    if (handoffWanted && status === "bot") socket.send(JSON.stringify({ type: "handoff" }));
    handoffWanted = false;
    scrollDown();
  }

  function onError(frame) {
    note(frame.message || "Something went wrong (" + (frame.code || "error") + ").", "error");
    if (REFUSED_MESSAGE[frame.code]) {
      var last = outbox.pop();
      if (last) {
        last.node.remove();
        if (!input.value) input.value = last.text;
      }
    }
  }

  // --- starting a conversation ---------------------------------------------------------------
  function start() {
    if (stored) return Promise.resolve(stored);
    if (starting) return starting;
    setState("Starting…");
    starting = fetch(endpoint + "/api/chat/conversations/", {
      method: "POST", mode: "cors", credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ route: routeKey })
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var text = response.status === 429 ? "Too many new chats from your network. Please try again in a minute."
            : response.status === 403 ? CLOSE_TEXT[4403]
            : (body.error && body.error.message) || body.detail || ("The chat could not start (" + response.status + ").");
          throw new Error(text);
        }
        return body;
      });
    }, function () {
      throw new Error("The chat service cannot be reached. Please try again later.");
    }).then(function (body) {
      stored = { id: body.id, token: body.token, ws_path: body.ws_path, title: body.title,
                 greeting: body.greeting, brand_colour: body.brand_colour };
      save(stored);
      applyLook();
      greet();
      starting = null;
      return stored;
    }, function (error) {
      starting = null;
      setState("");
      note(error.message, "error");
      throw error;
    });
    return starting;
  }

  function submit() {
    var text = input.value.trim();
    if (!text || status === "closed") return;
    var item = { client_id: clientId(), text: text, node: bubble({ role: "customer", text: text }) };
    item.node.classList.add("pending");
    input.value = "";
    start().then(function () {
      outbox.push(item);
      log.appendChild(item.node);
      scrollDown();
      if (socket && socket.readyState === 1 && helloDone) {
        socket.send(JSON.stringify({ type: "message", text: text, client_id: item.client_id }));
      } else {
        connect(); // sent after the history arrives
      }
    }, function () {
      if (!input.value) input.value = text;
    });
  }

  // --- open, close, keyboard -----------------------------------------------------------------
  function focusables() {
    return Array.prototype.filter.call(
      panel.querySelectorAll("button, textarea, input, a[href], [tabindex='0']"),
      function (node) { return !node.disabled && !node.hidden && node.offsetParent !== null; });
  }

  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.classList.remove("unread");
    applyLook();
    greet();
    if (stored) connect();
    input.focus();
    scrollDown();
  }

  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", function () { if (panel.hidden) open(); else close(); });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); close(); return; }
    if (event.key !== "Tab") return;
    var items = focusables();
    if (!items.length) return;
    var first = items[0], last = items[items.length - 1];
    var active = shadow.activeElement;
    if (event.shiftKey && active === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && active === last) { event.preventDefault(); first.focus(); }
  });
  compose.addEventListener("submit", function (event) { event.preventDefault(); submit(); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); submit(); }
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (socket && socket.readyState === 1 && helloDone && now - lastTypingSent > TYPING_SENT_MS) {
      lastTypingSent = now;
      socket.send(JSON.stringify({ type: "typing" }));
    }
  });
  personButton.addEventListener("click", function () {
    start().then(function () {
      if (socket && socket.readyState === 1 && helloDone) send({ type: "handoff" });
      else {
        handoffWanted = true; // sent once the history arrived
        connect();
      }
    }, function () { /* the error is shown in the log */ });
  });
  stopButton.addEventListener("click", function () { send({ type: "stop" }); });

  applyLook();
  document.body.appendChild(host);
  if (stored) connect(); // a reload: reconnect, so agent replies arrive while the panel is closed
})();
