"""Agents' corrections of assistant replies: the better answer (and, when they say, the right
intent) to the customer message before it. Stored as ``Correction`` rows, which the learning
loop's dataset export reads as labelled training data."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from apps.chat.models import Correction, Message

CORRECTION_MAX_CHARS = 4000
INTENT_MAX = Correction._meta.get_field("intent").max_length


def correction_create(*, message: Message, text: str, intent: str = "", agent: Any = None) -> Correction:
    """Raises ``ValidationError`` for a message that is not the assistant's, or bad text/intent."""
    if message.role != Message.Role.ASSISTANT:
        raise ValidationError("message: only the assistant's replies can be corrected.")
    clean = str(text or "").replace("\r\n", "\n").strip()
    if not clean:
        raise ValidationError("text: may not be empty.")
    if len(clean) > CORRECTION_MAX_CHARS:
        raise ValidationError(f"text: at most {CORRECTION_MAX_CHARS} characters.")
    label = str(intent or "").strip()
    if len(label) > INTENT_MAX:
        raise ValidationError(f"intent: at most {INTENT_MAX} characters.")
    return Correction.objects.create(
        message=message, text=clean, intent=label, agent=agent if getattr(agent, "pk", None) else None
    )
