"""Loads what a chat reply needs before the first customer asks (``TRELLIS_CHAT_WARM``).

A cold server answers its first question only after loading the embedder, the intent model,
the chat LM (converted from GGUF on the very first start, ~20 s), the redaction engine (~3 s)
and the knowledge-base index: the demo's first reply took ~27 s to its first token on a cold
server. With ``TRELLIS_CHAT_WARM=1`` (``manage.py run_suite`` sets it for its web process) an
ASGI process loads them on a background thread at start-up; a reply that comes meanwhile
waits for the same loads, as without warming. Failures are logged, never fatal: the reply
pipeline reports a missing model itself.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections

log = logging.getLogger(__name__)

ROLES = ("embedder", "intent", "chat-lm")


def chat_models_warm() -> dict[str, float]:
    """Loads the chat roles, the redaction engine and the KB index; returns seconds per part."""
    from apps.chat.services.index import kb_index_cache
    from apps.chat.services.redaction import redact
    from apps.mlops.services.serving import model_get

    parts: list[tuple[str, object]] = [(role, lambda role=role: model_get(role)) for role in ROLES]
    parts += [("redaction", lambda: redact("warm-up")), ("kb index", kb_index_cache.get)]
    seconds: dict[str, float] = {}
    try:
        for name, load in parts:
            began = time.perf_counter()
            try:
                load()  # type: ignore[operator]
            except Exception as exc:  # a role without a model here: the pipeline says so per reply
                log.warning("chat warm-up: %s not loaded: %s", name, exc)
                continue
            seconds[name] = round(time.perf_counter() - began, 2)
    finally:
        close_old_connections()  # this thread's database connection (registry sync, index status)
    log.info("chat warm-up done: %s", seconds)
    return seconds


def chat_models_warm_in_background() -> threading.Thread:
    thread = threading.Thread(target=chat_models_warm, name="chat-warm-up", daemon=True)
    thread.start()
    return thread
