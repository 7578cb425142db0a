"""Every app's WebSocket routes, in one list."""

from apps.chat.routing import websocket_urlpatterns as chat_ws
from apps.core.routing import websocket_urlpatterns as core_ws
from apps.mlops.routing import websocket_urlpatterns as mlops_ws
from apps.sentiment.routing import websocket_urlpatterns as sentiment_ws

websocket_urlpatterns = [*core_ws, *mlops_ws, *sentiment_ws, *chat_ws]
