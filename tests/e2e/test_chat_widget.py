"""The chat widget in headless Chromium, embedded by its script tag in a page on another origin.

The Trellis side is the real ASGI application (HTTP and WebSockets) under uvicorn in a thread
of this process, on the test database, with the real bundled models (MiniLM retrieval, the
zero-shot intent model, SmolLM2 streaming; replies capped at a few tokens to keep it short).
The shop is a static page on 127.0.0.2 (another origin; not one of the server's own host
names either, which the socket's Origin check accepts on any port). A second static site there,
on another port, is an origin no route allows.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PASSWORD = "pw-for-tests-123"
QUESTION = "How many days do I have to return an item for a refund?"
SITE_HOST = "127.0.0.2"  # loopback too, but not in ALLOWED_HOSTS
REPLY_TIMEOUT_MS = 240_000  # the first reply loads the LM (and converts it once) on a loaded CPU


@pytest.fixture(scope="module")
def browser(browser_type, browser_type_launch_args) -> Iterator[Browser]:
    """Chromium as tests/e2e/conftest.py launches it, whose resolver rule also lets 127.0.0.2
    through (the shops' host); a browser of this module's own."""
    rule = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE " + SITE_HOST
    args = [a for a in browser_type_launch_args.get("args", []) if not a.startswith("--host-resolver-rules=")]
    launched = browser_type.launch(**{**browser_type_launch_args, "args": [*args, rule]})
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture
def asgi_server(transactional_db, settings) -> Iterator[str]:
    """config.asgi under uvicorn on a free port, in a thread (same process: same test DB,
    same in-memory channel layer for the customer's and the agent's sockets)."""
    import socket

    import uvicorn

    from config.asgi import application

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, ws="websockets", lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _static_site(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((SITE_HOST, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{SITE_HOST}:{server.server_address[1]}"


@pytest.fixture
def sites(tmp_path) -> Iterator[dict[str, tuple[str, Path]]]:
    """Two static sites on their own ports: "shop" (allowed by the route) and "other" (not)."""
    made = {}
    servers = []
    for name in ("shop", "other"):
        root = tmp_path / name
        root.mkdir()
        server, origin = _static_site(root)
        servers.append(server)
        made[name] = (origin, root)
    yield made
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def knowledge_base(settings, tmp_path, monkeypatch):
    """Two published articles, indexed with the real MiniLM (as the pipeline searches them)."""
    from apps.chat.services import background, index
    from apps.chat.services.articles import article_create

    settings.TRELLIS_KB_DIR = tmp_path / "kb"
    settings.TRELLIS_CHAT_MAX_REPLY_TOKENS = 24  # a short reply: still several token frames
    monkeypatch.setattr(background, "RUN_INLINE", True)
    index.kb_index_cache.reset()
    returns = article_create(
        values={
            "title": "Returns and refunds",
            "body": "You can return an item within 30 days of delivery for a full refund. "
            "Refunds go back to the original payment method within 5 business days.",
            "published": True,
        }
    )
    article_create(
        values={"title": "Shipping times", "body": "Standard shipping takes 3 to 5 days.", "published": True}
    )
    yield returns
    index.kb_index_cache.reset()


def _embed(root: Path, server: str, route: str) -> None:
    (root / "index.html").write_text(
        "<!doctype html><html><head><meta charset=utf-8><title>Another shop</title></head><body>"
        "<h1>Another shop</h1><p>Products.</p>"
        f'<script src="{server}/static/chat/widget.js" data-route="{route}" defer></script>'
        "</body></html>",
        encoding="utf-8",
    )


def test_customer_on_another_origin_chats_and_an_agent_takes_over(
    page: Page, browser: Browser, asgi_server, sites, knowledge_base, make_user
):
    from apps.chat.models import Conversation, WidgetRoute

    shop_origin, shop_root = sites["shop"]
    WidgetRoute.objects.create(
        key="shop",
        name="Shop",
        title="Shop help",
        allowed_origins=[shop_origin],
        brand_colour="#aa3300",
        greeting="Hello from the shop!",
    )
    _embed(shop_root, asgi_server, "shop")
    tokens: list[str] = []
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framereceived",
            lambda payload: tokens.append(payload)
            if '"type": "token"' in str(payload) or '"type":"token"' in str(payload)
            else None,
        ),
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # the customer opens the widget on the shop's page and asks
    page.goto(shop_origin + "/index.html")
    # (before the first start the widget knows only its data- attributes: the default title)
    launcher = page.get_by_role("button", name=re.compile(r"^Open chat: "))
    launcher.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    box = dialog.get_by_role("textbox", name="Your message")
    expect(box).to_be_focused()
    box.fill(QUESTION)
    box.press("Enter")

    # its message is echoed, the reply streams in and ends with its source, linked
    log = dialog.get_by_role("log", name="Conversation")
    expect(log.locator(".msg.customer .text")).to_have_text(QUESTION, timeout=60_000)
    expect(dialog.get_by_text("Hello from the shop!")).to_be_visible()  # the route's look, from the start
    expect(dialog.get_by_role("heading", name="Shop help")).to_be_visible()
    expect(launcher).to_have_accessible_name("Open chat: Shop help")
    reply = log.locator(".msg.assistant:not(.greeting)")
    expect(reply.locator(".sources")).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    assert len(tokens) >= 2, f"expected streamed token frames, got {len(tokens)}"
    expect(reply.locator(".text")).not_to_be_empty()
    source = reply.get_by_role("link", name="Returns and refunds")
    expect(source).to_have_attribute("href", f"{asgi_server}/chat/help/{knowledge_base.pk}/")
    expect(reply.get_by_role("button", name="Helpful", exact=True)).to_be_visible()
    conversation = Conversation.objects.get()
    assert conversation.origin == shop_origin

    # a thumbs up is stored
    reply.get_by_role("button", name="Helpful", exact=True).click()
    expect(reply.get_by_role("button", name="Helpful", exact=True)).to_have_attribute("aria-pressed", "true")

    # Esc closes the panel and gives the focus back to the launcher
    box.press("Escape")
    expect(dialog).to_be_hidden()
    expect(launcher).to_be_focused()
    launcher.click()

    # an agent, in another browser context, takes over and replies
    make_user("agent", username="ana")
    agent_context = browser.new_context()
    try:
        agent = agent_context.new_page()
        agent.goto(asgi_server + "/accounts/login/")
        agent.get_by_label("Username").fill("ana")
        agent.get_by_label("Password").fill(PASSWORD)
        agent.get_by_role("button", name="Log in").click()
        agent.goto(f"{asgi_server}/chat/console/?conversation={conversation.public_id}")
        expect(agent.locator("#conv-state")).to_have_text("live", timeout=30_000)  # the console's socket
        agent.get_by_role("button", name="Take over").click()
        expect(dialog.get_by_role("status")).to_contain_text("helping you", timeout=30_000)
        agent.get_by_role("textbox", name="Reply").fill("Hi, I'm Ana. Your return window is 30 days.")
        agent.get_by_role("button", name="Send").click()

        # the customer sees the agent's reply, labelled with the agent's name
        agent_reply = log.locator(".msg.agent")
        expect(agent_reply.locator(".text")).to_have_text("Hi, I'm Ana. Your return window is 30 days.", timeout=30_000)
        expect(agent_reply.locator(".who")).not_to_have_text("Agent")
    finally:
        agent_context.close()

    # a reload reconnects to the same conversation (hello -> history)
    page.reload()
    page.get_by_role("button", name="Open chat: Shop help").click()
    expect(page.locator(".msg.agent .text")).to_have_text("Hi, I'm Ana. Your return window is 30 days.", timeout=30_000)
    assert Conversation.objects.count() == 1
    from apps.chat.models import Feedback

    assert Feedback.objects.get().helpful is True
    assert errors == []


def test_a_page_on_an_origin_no_route_allows_gets_no_chat(page: Page, asgi_server, sites):
    from apps.chat.models import Conversation, WidgetRoute
    from apps.chat.services.conversations import conversation_start

    shop_origin, _ = sites["shop"]
    other_origin, other_root = sites["other"]
    route = WidgetRoute.objects.create(key="shop", name="Shop", allowed_origins=[shop_origin])
    _embed(other_root, asgi_server, "shop")
    existing, _ = conversation_start(route=route, customer=None, origin=shop_origin)

    page.goto(other_origin + "/index.html")
    page.get_by_role("button", name="Open chat: Customer service").click()
    box = page.get_by_role("textbox", name="Your message")
    box.fill("Hello?")
    box.press("Enter")
    # the preflight gets no CORS headers: the browser never sends the POST
    expect(page.locator(".msg.error")).to_have_text("The chat service cannot be reached. Please try again later.")
    expect(box).to_have_value("Hello?")  # the text is given back, not lost
    assert Conversation.objects.count() == 1

    # and a socket from this page to a real conversation is refused at the handshake (the
    # server closes before accepting: the browser reports 1006 and never "open")
    outcome = page.evaluate(
        """url => new Promise(resolve => {
            let opened = false;
            const ws = new WebSocket(url);
            ws.addEventListener("open", () => { opened = true; });
            ws.addEventListener("close", event => resolve({opened, code: event.code}));
        })""",
        asgi_server.replace("http://", "ws://") + f"/ws/chat/{existing.public_id}/",
    )
    assert outcome == {"opened": False, "code": 1006}


def test_demo_shop_page_embeds_the_widget_under_the_sites_strict_csp(page: Page, asgi_server):
    from apps.chat.services.routes import demo_route_ensure

    demo_route_ensure(origins=[asgi_server])
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    response = page.goto(asgi_server + "/chat/shop/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    launcher = page.get_by_role("button", name="Open chat: Customer service")
    # the shadow root's constructed stylesheet applies (a CSP refusing it would leave a grey button)
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(37, 99, 235)"  # #2563eb
    # the shop's own CSS (uppercase, letter-spaced buttons) does not reach into the widget
    assert launcher.evaluate("b => getComputedStyle(b).textTransform") == "none"
    launcher.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("textbox", name="Your message")).to_be_focused()
    inside_panel = "() => !!document.querySelector('[data-trellis-chat]').shadowRoot.activeElement?.closest('.panel')"
    for _ in range(6):  # round the panel and past its last control: the focus stays inside
        page.keyboard.press("Tab")
        assert page.evaluate(inside_panel)
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(inside_panel)
    assert problems == []
