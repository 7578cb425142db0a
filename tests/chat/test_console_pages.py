"""The agent console and saved-replies pages: who may open them, what they carry for the
script (socket paths, saved replies, stable names), the CSP rules, and the pages that moved
onto the shared socket client and components."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.chat.models import SavedReply

pytestmark = pytest.mark.django_db

PAGES = ["/chat/console/", "/chat/saved-replies/", "/chat/saved-replies/new/"]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def agent(make_user):
    return make_user("agent", username="alice")


@pytest.fixture
def agent_client(agent) -> Client:
    return _client(agent)


@pytest.mark.parametrize("path", PAGES)
def test_pages_by_role(path, make_user, agent_client):
    # agents and admins get the page
    assert agent_client.get(path).status_code == 200
    assert _client(make_user("admin")).get(path).status_code == 200
    # an analyst is refused, anonymous visitors are sent to the login page
    assert _client(make_user("analyst")).get(path).status_code == 403
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_console_carries_socket_paths_saved_replies_and_stable_names(agent_client):
    SavedReply.objects.create(shortcut="refund", title="Refund window", text="You have 30 days to return an item.")

    html = agent_client.get("/chat/console/").content.decode()

    root = re.search(r'<div id="console"[^>]*>', html, re.S).group(0)
    assert 'data-queue-ws="/ws/chat/queue/"' in root
    assert 'data-conversation-ws="/ws/chat/00000000-0000-0000-0000-000000000000/"' in root
    assert 'data-correction-url="/api/chat/messages/0/corrections/"' in root
    assert 'data-agent="alice"' in root  # as status frames name the agent
    saved = json.loads(re.search(r'<script id="saved-replies" type="application/json">(.*?)</script>', html, re.S)[1])
    assert saved == [{"shortcut": "refund", "title": "Refund window", "text": "You have 30 days to return an item."}]
    assert '<option value="refund">/refund · Refund window</option>' in html
    # the names the e2e tests and screen readers rely on
    assert '<label for="reply-text">Reply</label>' in html
    for testid, name in (("take-over", "Take over"), ("hand-back", "Hand back to assistant"), ("send", "Send")):
        assert re.search(rf'<button[^>]*data-testid="{testid}"[^>]*>{name}</button>', html)
    assert 'aria-live="polite" aria-label="Messages"' in html
    # the shared socket client loads before the console's script
    assert html.index("core/socket.js") < html.index("chat/console.js")


@pytest.mark.parametrize("path", PAGES)
def test_console_pages_have_no_inline_script_style_or_handler(path, agent_client):
    html = agent_client.get(path).content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


def test_saved_reply_created_edited_and_deleted_on_the_pages(agent, agent_client):
    # create (a leading "/" is dropped)
    response = agent_client.post(
        "/chat/saved-replies/new/", {"shortcut": "/Refund", "title": "Refund window", "text": "30 days."}
    )
    assert response.status_code == 302
    reply = SavedReply.objects.get()
    assert (reply.shortcut, reply.title, reply.text, reply.created_by) == ("refund", "Refund window", "30 days.", agent)
    assert "/refund" in agent_client.get("/chat/saved-replies/").content.decode()

    # edit
    response = agent_client.post(
        f"/chat/saved-replies/{reply.pk}/edit/", {"shortcut": "refund", "title": "Refunds", "text": "Thirty days."}
    )
    assert response.status_code == 302
    reply.refresh_from_db()
    assert (reply.title, reply.text) == ("Refunds", "Thirty days.")

    # delete (POST only)
    assert agent_client.get(f"/chat/saved-replies/{reply.pk}/delete/").status_code == 405
    assert agent_client.post(f"/chat/saved-replies/{reply.pk}/delete/").status_code == 302
    assert not SavedReply.objects.exists()

    # audited like knowledge-base edits
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor__username"))
    assert actions == [
        ("chat_saved_reply.create", "alice"),
        ("chat_saved_reply.update", "alice"),
        ("chat_saved_reply.delete", "alice"),
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"shortcut": "two words", "title": "t", "text": "x"}, "lower-case letters, digits"),
        ({"shortcut": "ok", "title": "t", "text": "   "}, "text: may not be empty."),
        ({"shortcut": "taken", "title": "t", "text": "x"}, "/taken is already used"),
    ],
)
def test_bad_saved_reply_shows_the_error_and_stores_nothing(values, message, agent_client):
    SavedReply.objects.create(shortcut="taken", title="Taken", text="first")

    response = agent_client.post("/chat/saved-replies/new/", values)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert SavedReply.objects.count() == 1


def test_unknown_saved_reply_is_404(agent_client):
    assert agent_client.get("/chat/saved-replies/999/edit/").status_code == 404
    assert agent_client.post("/chat/saved-replies/999/delete/").status_code == 404


def test_kb_nav_links_to_the_console_and_saved_replies(agent_client):
    html = agent_client.get("/kb/").content.decode()
    assert 'href="/chat/console/">Console</a>' in html
    assert 'href="/chat/saved-replies/">Saved replies</a>' in html


def test_admin_lists_conversations_read_only_and_edits_saved_replies(make_user):
    from apps.chat.models import Conversation, Message

    conversation = Conversation.objects.create()
    Message.objects.create(conversation=conversation, role="customer", text="Where is my parcel?")
    reply = SavedReply.objects.create(shortcut="hours", title="Hours", text="9 to 5.")
    admin = _client(make_user("admin"))

    for path in ("conversation", "message", "correction", "savedreply"):
        assert admin.get(f"/admin/chat/{path}/").status_code == 200, path
    page = admin.get(f"/admin/chat/conversation/{conversation.pk}/change/")
    assert page.status_code == 200 and "Where is my parcel?" in page.content.decode()
    # conversations and messages are a record: no adding, no editing
    assert admin.get("/admin/chat/conversation/add/").status_code == 403
    assert admin.post(f"/admin/chat/message/{conversation.messages.get().pk}/change/", {"text": "x"}).status_code == 403
    # saved replies are edited here too, audited
    response = admin.post(
        f"/admin/chat/savedreply/{reply.pk}/change/", {"shortcut": "hours", "title": "Opening hours", "text": "9 to 5."}
    )
    assert response.status_code == 302
    reply.refresh_from_db()
    assert reply.title == "Opening hours"
    assert AuditEvent.objects.filter(action="chat_saved_reply.update").count() == 1
