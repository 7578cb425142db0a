"""The agent console and the saved-replies pages, mounted under ``/chat/`` (namespace ``chat``).

The console is one page whose script follows ``ws/chat/queue/`` and, for the selected
conversation, ``ws/chat/<uuid>/``; every action goes over the socket (the REST API in
``api_console`` does the same for programmatic agents). Pages are for agents and admins.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.roles import Role, role_required
from apps.chat.forms_console import SavedReplyForm
from apps.chat.models import SavedReply
from apps.chat.services.conversations import agent_display_name
from apps.chat.services.saved_replies import (
    saved_reply_create,
    saved_reply_delete,
    saved_reply_get,
    saved_reply_list,
    saved_reply_update,
)

agents = role_required(Role.AGENT)
# Placeholders the console's script replaces with a conversation's id or a message's id.
SAMPLE_UUID = "00000000-0000-0000-0000-000000000000"


@agents
def console(request: HttpRequest) -> HttpResponse:
    replies = [{"shortcut": r.shortcut, "title": r.title, "text": r.text} for r in saved_reply_list()]
    return render(
        request,
        "chat/console.html",
        {
            "queue_ws": "/ws/chat/queue/",
            "conversation_ws": f"/ws/chat/{SAMPLE_UUID}/",
            "correction_url": reverse("api-chat-message-corrections", args=[0]),
            "saved_replies": replies,
            "agent_name": agent_display_name(request.user),  # how status frames name the agent
        },
    )


def _saved_reply_or_404(pk: int) -> SavedReply:
    reply = saved_reply_get(pk)
    if reply is None:
        raise Http404("No such saved reply.")
    return reply


@agents
def saved_replies(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:100]
    return render(request, "chat/saved_replies.html", {"replies": saved_reply_list(q=q), "q": q})


def _edit(request: HttpRequest, reply: SavedReply | None) -> HttpResponse:
    initial = {"shortcut": reply.shortcut, "title": reply.title, "text": reply.text} if reply else {}
    form = SavedReplyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if reply is None:
                reply = saved_reply_create(values=form.values(), user=request.user, request=request)
                messages.success(request, f"Saved reply /{reply.shortcut} created.")
            else:
                reply = saved_reply_update(saved_reply=reply, values=form.values(), user=request.user, request=request)
                messages.success(request, f"Saved reply /{reply.shortcut} updated.")
            return redirect("chat:saved_replies")
        except ValidationError as exc:
            for text in exc.messages:
                form.add_error(None, text)
    return render(request, "chat/saved_replies_form.html", {"form": form, "reply": reply})


@agents
def saved_reply_new(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@agents
def saved_reply_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _edit(request, _saved_reply_or_404(pk))


@agents
@require_POST
def saved_reply_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    reply = _saved_reply_or_404(pk)
    shortcut = reply.shortcut
    saved_reply_delete(saved_reply=reply, user=request.user, request=request)
    messages.success(request, f"Saved reply /{shortcut} deleted.")
    return redirect("chat:saved_replies")
