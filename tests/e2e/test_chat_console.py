"""The agent console in headless Chromium, served by a real uvicorn (as run_suite starts it):
an agent sees a waiting conversation in the queue, opens it, sees the customer typing,
corrects the assistant's reply, takes it over and sends a reply that is stored and reaches the
customer's socket, under the Content-Security-Policy, with no console errors.

The conversation is created by this test process through the services (committed: the server
reads the same database); everything the agent does goes through the page's sockets.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Browser, Page, expect
from websockets.sync.client import connect

from apps.chat.models import Conversation, Correction, Message, SavedReply, WidgetRoute
from apps.chat.services.conversations import conversation_handoff, conversation_start, customer_message_add
from tests.e2e.live import WATCH_VIOLATIONS, uvicorn_server
from tests.servers import conftest as servers
from tests.servers.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.servers, pytest.mark.timeout(600), pytest.mark.django_db(transaction=True)]

start_process = servers.start_process  # the fixture that starts and always stops a child process

PASSWORD = "pw-for-tests-123"
SCREENSHOT = "/tmp/e2e-chat-console.png"
QUESTION = "My parcel never arrived, I want to talk to a person"
WRONG = "I'm unable to provide assistance with parcels."
BETTER = "Parcels that have not arrived after 10 days are refunded or sent again."
REPLY = "Hello, I'm Agnes. I'm sorry about your parcel: let me look at your order."
@pytest.fixture
def server(start_process, tmp_path) -> Server:
    from django.conf import settings

    # One secret for both processes, as for servers behind one load balancer: the visitor token
    # signed here (conversation_start) opens the conversation there.
    return uvicorn_server(start_process, tmp_path, DJANGO_SECRET_KEY=settings.SECRET_KEY)


@pytest.fixture
def waiting() -> Conversation:
    route = WidgetRoute.objects.create(key="shop", name="Shop")
    conversation, token = conversation_start(route=route, origin="")
    conversation.visitor_token = token  # the customer's socket says hello with it
    customer_message_add(conversation, "Where is my parcel?", client_id="c-0")
    Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, text=WRONG, decision="answer")
    customer_message_add(conversation, QUESTION, client_id="c-1")
    conversation_handoff(conversation, Conversation.HandoffReason.ASKED)
    return conversation


def _log_in(page: Page, base_url: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Username").fill("agnes")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Welcome, agnes")).to_be_visible()


def test_agent_takes_over_a_waiting_conversation_and_replies(browser: Browser, server: Server, make_user, waiting):
    make_user("agent", username="agnes", password=PASSWORD)
    SavedReply.objects.create(shortcut="hours", title="Hours", text="We answer from 9:00 to 17:00, Monday to Friday.")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    context.expose_function("reportViolation", lambda text: problems.append(f"CSP {text}"))
    context.add_init_script(WATCH_VIOLATIONS)
    try:
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(f"console {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"error {e}"))
        _log_in(page, server.url)

        # the queue shows the waiting conversation, its reason and the customer's words
        page.goto(server.url + "/chat/console/")
        expect(page.locator("#queue-state")).to_have_text("live")
        item = page.locator(f'#queue-list li[data-conversation="{waiting.public_id}"]')
        expect(item).to_be_visible(timeout=15_000)
        expect(item).to_contain_text("Waiting for a person")
        expect(item).to_contain_text("asked for a person")
        expect(item).to_contain_text(QUESTION[:40])

        # opening it shows the history; until taken over, the reply box is off
        item.get_by_role("button").click()
        expect(page.locator("#conv-state")).to_have_text("live")
        messages = page.get_by_test_id("messages")
        customer_texts = messages.locator('li[data-role="customer"] .msg-text')
        expect(customer_texts).to_have_text(["Where is my parcel?", QUESTION], timeout=10_000)
        # "Correct" on the assistant's reply stores a better answer (training data)
        assistant = messages.locator('li[data-role="assistant"]')
        assistant.get_by_role("button", name="Correct this reply").click()
        assistant.get_by_label("Better answer").fill(BETTER)
        assistant.get_by_label("Right intent (optional)").fill("delivery_problem")
        assistant.get_by_role("button", name="Save correction").click()
        expect(assistant.locator(".correction-result")).to_have_text("Saved as training data.")

        reply_box = page.get_by_role("textbox", name="Reply")
        expect(reply_box).to_be_disabled()

        # the customer, connected too: typing shows in the console
        customer = connect(f"ws://127.0.0.1:{server.port}/ws/chat/{waiting.public_id}/", origin=server.url)
        customer.send(json.dumps({"type": "hello", "token": waiting.visitor_token}))
        assert json.loads(customer.recv(timeout=10))["type"] == "history"
        customer.send(json.dumps({"type": "typing"}))
        expect(page.get_by_text("The customer is typing…")).to_be_visible()

        # take over: the status changes, the customer is told, the draft panel opens
        page.get_by_role("button", name="Take over").click()
        expect(page.get_by_test_id("conversation-status")).to_have_text("With an agent")
        expect(messages.locator('li[data-role="system"]')).to_contain_text("You are now talking to agnes")
        expect(page.get_by_role("heading", name="Draft")).to_be_visible()
        expect(reply_box).to_be_enabled()

        # "/shortcut" + Space inserts the saved reply; Shift+Enter adds a line instead of sending
        reply_box.fill("Hi! /hours")
        reply_box.press("Space")
        expect(reply_box).to_have_value("Hi! We answer from 9:00 to 17:00, Monday to Friday.")
        reply_box.press("Shift+Enter")
        expect(reply_box).to_have_value("Hi! We answer from 9:00 to 17:00, Monday to Friday.\n")

        # the reply: typed, sent with Enter, echoed back from the server
        reply_box.fill(REPLY)
        reply_box.press("Enter")
        expect(messages.locator('li[data-role="agent"] .msg-text')).to_have_text(REPLY, timeout=10_000)
        expect(reply_box).to_have_value("")
        page.screenshot(path=SCREENSHOT, full_page=True)
        # and the customer's socket got the agent's reply
        seen = []
        while not any(f.get("message", {}).get("role") == "agent" for f in seen):
            seen.append(json.loads(customer.recv(timeout=10)))
        assert [f["message"]["text"] for f in seen if f.get("message", {}).get("role") == "agent"] == [REPLY]
        assert {"type": "status", "status": "agent", "agent": "agnes"} in seen
        customer.close()

        # the queue now lists it under the agent's own conversations
        expect(item).to_have_attribute("data-status", "agent", timeout=10_000)
        expect(item).to_contain_text("agnes")
    finally:
        context.close()

    correction = Correction.objects.get()
    assert (correction.message.text, correction.text, correction.intent) == (WRONG, BETTER, "delivery_problem")
    assert correction.agent.username == "agnes"
    stored = Message.objects.get(conversation=waiting, role=Message.Role.AGENT)
    assert (stored.text, stored.author.username, stored.generator) == (REPLY, "agnes", "agent")
    waiting.refresh_from_db()
    assert waiting.status == Conversation.Status.AGENT and waiting.assigned_agent.username == "agnes"
    assert problems == [], "\n".join(problems) + "\n" + server.log_tail()
