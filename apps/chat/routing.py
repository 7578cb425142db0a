"""WebSocket routes of the chat app (joined into config/routing.py)."""

from django.urls import path

from apps.chat.consumers import ChatConsumer, ChatQueueConsumer

websocket_urlpatterns = [
    path("ws/chat/queue/", ChatQueueConsumer.as_asgi()),
    path("ws/chat/<uuid:public_id>/", ChatConsumer.as_asgi()),
]
