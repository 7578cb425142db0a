/* TrellisSocket: the one WebSocket client every dashboard page and the console share.
 *
 *   var live = TrellisSocket.open("/ws/mlops/jobs/7/", {
 *     onFrame: function (frame) { ... },          // each JSON object the server sends
 *     onStatus: function (state, text) { ... },   // for a connection badge (see STATES)
 *     onOpen: function (live) { ... },            // e.g. send {"type": "hello", "token": ...}
 *     ping: true,                                 // {"type": "ping"} every 25 s (servers that answer it)
 *     reconnect: function () { return true; },    // false: stay closed after a drop (job finished)
 *   });
 *   live.send({type: "message", text: "Hi"});     // false when not connected (nothing is queued)
 *   live.close();
 *
 * Reconnects with exponential backoff (1 s, 2 s, 4 s ... capped at 30 s, reset on open).
 * Close codes 4401 (signed out), 4403 (not allowed), 4404 (not found) and 4429 (too many
 * messages) are final: retrying could not succeed (or would make a flood worse), so the page
 * says why and stays closed. Frames that are not JSON objects are ignored. */
(function () {
  "use strict";

  var PING_EVERY_MS = 25000; // below common proxy idle timeouts (30-60 s)
  var MAX_BACKOFF_MS = 30000;
  var FINAL_CODES = {
    4401: "signed out: reload the page",
    4403: "not allowed",
    4404: "not found",
    4429: "too many messages: slow down and reload",
  };
  // state -> default badge text
  var STATES = {
    connecting: "connecting…", live: "live", reconnecting: "reconnecting…",
    closed: "closed", refused: "not available", unavailable: "unavailable: reload for updates",
  };

  function socketUrl(path) {
    if (/^wss?:\/\//.test(path)) return path;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + path;
  }

  function open(path, options) {
    var opts = options || {};
    var ws = null, pingTimer = null, retryTimer = null, attempts = 0, stopped = false;
    var handle = {
      state: "connecting",
      closeCode: null,
      send: function (frame) {
        if (!ws || ws.readyState !== WebSocket.OPEN) return false;
        ws.send(JSON.stringify(frame));
        return true;
      },
      isOpen: function () { return !!ws && ws.readyState === WebSocket.OPEN; },
      close: function () {
        stopped = true;
        clearTimeout(retryTimer);
        clearInterval(pingTimer);
        if (ws) ws.close(1000);
        status("closed");
      },
    };

    function status(state, text) {
      handle.state = state;
      if (opts.onStatus) opts.onStatus(state, text || STATES[state] || state);
    }

    function connect() {
      if (typeof window.WebSocket === "undefined" || !path) { status("unavailable"); return; }
      status(attempts ? "reconnecting" : "connecting");
      ws = new WebSocket(socketUrl(path));
      ws.onopen = function () {
        attempts = 0;
        status("live");
        clearInterval(pingTimer);
        if (opts.ping) {
          pingTimer = setInterval(function () { handle.send({ type: "ping" }); }, PING_EVERY_MS);
        }
        if (opts.onOpen) opts.onOpen(handle);
      };
      ws.onmessage = function (message) {
        var frame;
        try { frame = JSON.parse(message.data); } catch (e) { return; }
        if (!frame || typeof frame !== "object" || Array.isArray(frame)) return;
        if (opts.onFrame) opts.onFrame(frame, handle);
      };
      ws.onclose = function (event) {
        clearInterval(pingTimer);
        ws = null;
        handle.closeCode = event.code;
        if (stopped) return;
        if (Object.prototype.hasOwnProperty.call(FINAL_CODES, event.code)) {
          status("refused", FINAL_CODES[event.code]);
          if (opts.onRefused) opts.onRefused(event.code, event.reason);
          return;
        }
        if (opts.reconnect && !opts.reconnect()) { status("closed"); return; }
        attempts += 1;
        var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempts - 1));
        status("reconnecting", "reconnecting in " + Math.round(delay / 1000) + " s…");
        retryTimer = setTimeout(connect, delay);
      };
    }

    connect();
    return handle;
  }

  window.TrellisSocket = { open: open, FINAL_CODES: FINAL_CODES };
})();
