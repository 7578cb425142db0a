"""static/core/socket.js in headless Chromium, against a scripted WebSocket stand-in: frames,
status texts, reconnect with backoff, and the close codes that must not reconnect.

No server: the page is blank, the script is the shipped file, and ``window.WebSocket`` is a
class the test drives (open, message, close with a code). Playwright's clock runs the
backoff timers without waiting for them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

SOCKET_JS = Path(__file__).resolve().parents[2] / "static" / "core" / "socket.js"
FAKE_WEBSOCKET = """
window.sockets = [];
window.FakeSocket = class {
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0; window.sockets.push(this); }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code) { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen && this.onopen({}); }
  frame(text) { this.onmessage && this.onmessage({data: text}); }
  drop(code) { this.readyState = 3; this.onclose && this.onclose({code: code, reason: ""}); }
};
window.FakeSocket.OPEN = 1;
window.WebSocket = window.FakeSocket;
"""
START = """(opts) => {
  window.log = []; window.frames = [];
  window.live = TrellisSocket.open("/ws/chat/queue/", {
    ping: opts.ping,
    onStatus: (state, text) => log.push(state + ": " + text),
    onFrame: (frame) => frames.push(frame),
    onOpen: (live) => live.send({type: "hello", token: "t"}),
  });
}"""


@pytest.fixture
def blank(page: Page) -> Page:
    page.clock.install(time=0)
    page.add_init_script(FAKE_WEBSOCKET)
    page.goto("about:blank")
    page.clock.pause_at(1000)  # time moves only when the test says so
    page.add_script_tag(content=SOCKET_JS.read_text())
    return page


def test_frames_reach_the_page_and_a_drop_reconnects_with_backoff(blank: Page):
    blank.evaluate(START, {"ping": False})
    assert blank.evaluate("sockets[0].url").endswith("/ws/chat/queue/")
    assert blank.evaluate("sockets[0].url").startswith("ws")

    # when it opens, onOpen sends hello; JSON objects reach onFrame, anything else is dropped
    blank.evaluate("""() => { sockets[0].open(); sockets[0].frame('{"type":"queue","conversations":[]}');
                              sockets[0].frame('not json'); sockets[0].frame('[1,2]'); }""")
    assert blank.evaluate("sockets[0].sent") == [{"type": "hello", "token": "t"}]
    assert blank.evaluate("frames") == [{"type": "queue", "conversations": []}]
    assert blank.evaluate("live.send({type: 'typing'})") is True

    # a dropped connection retries after 1 s, then 2 s (a failed attempt doubles the wait)
    blank.evaluate("sockets[0].drop(1006)")
    assert blank.evaluate("live.send({type: 'typing'})") is False  # nothing queued while down
    blank.clock.run_for(999)
    assert blank.evaluate("sockets.length") == 1
    blank.clock.run_for(2)
    assert blank.evaluate("sockets.length") == 2
    blank.evaluate("sockets[1].drop(1006)")
    blank.clock.run_for(1500)
    assert blank.evaluate("sockets.length") == 2
    blank.clock.run_for(600)
    assert blank.evaluate("sockets.length") == 3
    # an open connection resets the backoff and says hello again
    blank.evaluate("sockets[2].open()")
    assert blank.evaluate("sockets[2].sent") == [{"type": "hello", "token": "t"}]
    assert blank.evaluate("log") == [
        "connecting: connecting…",
        "live: live",
        "reconnecting: reconnecting in 1 s…",
        "reconnecting: reconnecting…",
        "reconnecting: reconnecting in 2 s…",
        "reconnecting: reconnecting…",
        "live: live",
    ]


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (4401, "signed out: reload the page"),
        (4403, "not allowed"),
        (4404, "not found"),
        (4429, "too many messages: slow down and reload"),
    ],
)
def test_final_close_codes_say_why_and_never_reconnect(blank: Page, code: int, text: str):
    blank.evaluate(START, {"ping": False})
    blank.evaluate(f"() => {{ sockets[0].open(); sockets[0].drop({code}); }}")
    blank.clock.run_for(120_000)
    assert blank.evaluate("sockets.length") == 1
    assert blank.evaluate("log.at(-1)") == f"refused: {text}"


def test_ping_every_25_s_and_close_stops_everything(blank: Page):
    blank.evaluate(START, {"ping": True})
    blank.evaluate("sockets[0].open()")
    blank.clock.run_for(50_001)
    assert blank.evaluate("sockets[0].sent.filter(f => f.type === 'ping').length") == 2

    blank.evaluate("() => { live.close(); sockets[0].drop(1000); }")
    blank.clock.run_for(120_000)
    assert blank.evaluate("sockets.length") == 1
    assert blank.evaluate("log.at(-1)") == "closed: closed"
