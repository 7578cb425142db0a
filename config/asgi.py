"""ASGI entry point: HTTP through Django, WebSockets through Channels.

WebSockets pass the allowed-hosts origin check, then session auth (cookies from the
dashboard and the widget's page) and ticket auth (``?ticket=``, a single-use ticket from
``POST /api/auth/ws-ticket/``, for programmatic clients; API tokens never go in a URL).

Django runs each HTTP request's synchronous steps (signal receivers, sync views, the ORM)
on a worker thread of its own, started and joined per request. The inference API
(``/v1/``, ``/api/ml/``: async views whose few synchronous steps are short; see
``apps.serving.asyncapi``) skips that: its steps run on the process's one shared
thread-sensitive thread, as Channels consumers' database calls do. Starting and joining a
thread per request was a fifth of the event loop's time under 16 concurrent embedding
clients (py-spy, bench/bench_serving.py).
"""

import os

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # before importing consumers: sets up the app registry (as get_asgi_application)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.accounts.ws_auth import TrellisAuthMiddlewareStack  # noqa: E402
from apps.core.middleware import AsgiBodySizeLimit  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

SHARED_THREAD_PREFIXES = ("/v1/", "/api/ml/")


class TrellisAsgiHandler(ASGIHandler):
    """Django's ASGI handler; requests under ``SHARED_THREAD_PREFIXES`` run without a
    per-request thread (``ThreadSensitiveContext``), everything else as Django does."""

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "").removeprefix(scope.get("root_path", ""))
        if scope["type"] == "http" and path.startswith(SHARED_THREAD_PREFIXES):
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


django_asgi_app = TrellisAsgiHandler()

application = ProtocolTypeRouter(
    {
        "http": AsgiBodySizeLimit(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(TrellisAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
