"""Routes of the inference API: ``/v1/*`` (OpenAI-compatible) and ``/api/ml/*``.

Included once from config/urls.py at the root; ``/api/ml/*`` resolves here after the
other ``/api/`` routes found no match.
"""

from django.urls import path, re_path

from apps.serving import api

app_name = "serving"

urlpatterns = [
    path("v1/embeddings", api.EmbeddingsApi.as_view(), name="embeddings"),
    path("v1/chat/completions", api.ChatCompletionsApi.as_view(), name="chat-completions"),
    path("v1/models", api.ModelListApi.as_view(), name="models"),
    path("v1/models/<str:model_id>", api.ModelDetailApi.as_view(), name="model-detail"),
    re_path(r"^v1/(?P<rest>.*)$", api.v1_not_found, name="v1-not-found"),
    path("api/ml/classify/", api.ClassifyApi.as_view(), name="classify"),
    path("api/ml/entities/", api.EntitiesApi.as_view(), name="entities"),
    path("api/ml/stats/", api.ServingStatsApi.as_view(), name="stats"),
]
