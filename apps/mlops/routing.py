from django.urls import path

from apps.mlops.consumers import TrainingJobConsumer

websocket_urlpatterns = [path("ws/mlops/jobs/<int:job_id>/", TrainingJobConsumer.as_asgi())]
