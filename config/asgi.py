"""ASGI entry point: HTTP through Django, WebSockets through Channels.

WebSockets pass the allowed-hosts origin check (the widget's ``ws/chat/<uuid>/`` also accepts
its widget route's origins: ``apps.chat.ws_origin``), then session auth (cookies from the
dashboard and the widget's page) and ticket auth (``?ticket=``, a single-use ticket from
``POST /api/auth/ws-ticket/``, for programmatic clients; API tokens never go in a URL).

Django runs each HTTP request's synchronous steps (signal receivers, sync views, the ORM)
on a worker thread of its own, started and joined per request. The inference endpoints
(views of ``apps.serving.asyncapi.AsyncApiView``, marked ``shared_thread``: async views whose
few synchronous steps are short) skip that: their steps run on the process's one shared
thread-sensitive thread, as Channels consumers' database calls do. Starting and joining a
thread per request was a fifth of the event loop's time under 16 concurrent embedding
clients (py-spy, bench/bench_serving.py). The price: a model load that such a request
triggers (a model's first use in the process, the hot swap after a promotion: well under a
second for the bundled models) holds that thread, and the others' steps wait for it.

``POST /v1/embeddings`` from an API token this process already checked is answered before
Django's handler by ``apps.serving.fastpath`` (same checks, same answer; everything else goes on
to Django whole); ``TRELLIS_EMBEDDINGS_FAST_PATH=0`` sends every request through Django.
"""

import os
from functools import lru_cache

import django
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import Http404
from django.urls import resolve

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # before importing consumers: sets up the app registry (as get_asgi_application)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.accounts.ws_auth import TrellisAuthMiddlewareStack  # noqa: E402
from apps.chat.ws_origin import WidgetOriginValidator  # noqa: E402
from apps.core.middleware import AsgiBodySizeLimit  # noqa: E402
from apps.serving.fastpath import EmbeddingsFastPath  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402


@lru_cache(maxsize=1024)
def on_shared_thread(path: str) -> bool:
    """Whether the view at ``path`` asks for the shared thread (resolved once per path)."""
    try:
        return bool(getattr(resolve(path).func, "shared_thread", False))
    except Http404:
        return False


class TrellisAsgiHandler(ASGIHandler):
    """Django's ASGI handler; requests for views marked ``shared_thread`` run without a
    per-request thread (``ThreadSensitiveContext``), everything else as Django does."""

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "").removeprefix(scope.get("root_path", ""))
        if scope["type"] == "http" and on_shared_thread(path):
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


django_asgi_app = TrellisAsgiHandler()

application = ProtocolTypeRouter(
    {
        # POST /v1/embeddings from a known token skips Django's stack (apps.serving.fastpath).
        "http": AsgiBodySizeLimit(
            EmbeddingsFastPath(django_asgi_app) if settings.TRELLIS_EMBEDDINGS_FAST_PATH else django_asgi_app
        ),
        # Our own hosts' pages only (AllowedHostsOriginValidator), except the widget's
        # conversation socket, which also takes the origins its widget route lists.
        "websocket": WidgetOriginValidator(TrellisAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

if settings.TRELLIS_CHAT_WARM:  # load the chat models now, not on the first customer's question
    from apps.chat.services.warmup import chat_models_warm_in_background

    chat_models_warm_in_background()
