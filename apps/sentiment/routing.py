"""WebSocket routes of the sentiment app (joined into config/routing.py)."""

from django.urls import path

from apps.sentiment.consumers import SentimentLiveConsumer

websocket_urlpatterns = [path("ws/sentiment/live/", SentimentLiveConsumer.as_asgi())]
