"""Objects the access matrix (tests/core/test_access_matrix.py) needs for the agent console:
a conversation waiting for a person, one with an agent, an assistant reply to correct, and two
saved replies (one to delete)."""

from __future__ import annotations

from typing import Any

# For test_every_route_is_in_the_matrix: ids that resolve (a conversation's id is a UUID).
CONSOLE_ROUTE_IDS: dict[str, Any] = {
    "chat_waiting": "00000000-0000-0000-0000-000000000001",
    "chat_with_agent": "00000000-0000-0000-0000-000000000002",
    "chat_reply": 1,
    "chat_saved_reply": 1,
    "chat_saved_reply_doomed": 1,
}


def console_access_objects() -> dict[str, Any]:
    from apps.chat.models import Conversation, Message, SavedReply

    waiting = Conversation.objects.create(status=Conversation.Status.WAITING, handoff_reason="asked")
    Message.objects.create(conversation=waiting, role=Message.Role.CUSTOMER, text="Where is my parcel?")
    reply = Message.objects.create(conversation=waiting, role=Message.Role.ASSISTANT, text="I don't know.")
    with_agent = Conversation.objects.create(status=Conversation.Status.AGENT, handoff_reason="agent")
    saved = SavedReply.objects.create(shortcut="matrix-hours", title="Hours", text="9 to 5.")
    doomed = SavedReply.objects.create(shortcut="matrix-doomed", title="Doomed", text="To be deleted.")
    return {
        "chat_waiting": str(waiting.public_id),
        "chat_with_agent": str(with_agent.public_id),
        "chat_reply": reply.pk,
        "chat_saved_reply": saved.pk,
        "chat_saved_reply_doomed": doomed.pk,
    }
