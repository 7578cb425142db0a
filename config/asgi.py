"""ASGI entry point: HTTP through Django, WebSockets through Channels.

WebSockets pass the allowed-hosts origin check, then session auth (cookies from the
dashboard and the widget's page) and ticket auth (``?ticket=``, a single-use ticket from
``POST /api/auth/ws-ticket/``, for programmatic clients; API tokens never go in a URL).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # before importing consumers: sets up the app registry

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.accounts.ws_auth import TrellisAuthMiddlewareStack  # noqa: E402
from apps.core.middleware import AsgiBodySizeLimit  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": AsgiBodySizeLimit(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(TrellisAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
