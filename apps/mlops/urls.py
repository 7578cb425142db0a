"""Model pages, mounted at ``/models/``."""

from django.urls import path

from apps.mlops import training_views, views

app_name = "mlops"

urlpatterns = [
    path("", views.models_overview, name="models"),
    path("roles/<str:role>/", views.role_detail, name="role"),
    path("roles/<str:role>/rollback/", views.role_rollback, name="role_rollback"),
    path("versions/<int:pk>/", views.version_detail, name="version"),
    path("versions/<int:pk>/promote/", views.version_promote, name="version_promote"),
    path("versions/<int:pk>/evaluate/", views.version_evaluate, name="version_evaluate"),
    path("versions/<int:pk>/abstention/", views.version_abstention, name="version_abstention"),
    path("datasets/", training_views.dataset_index, name="datasets"),
    path("datasets/upload/", training_views.dataset_upload, name="dataset_upload"),
    path("datasets/<int:pk>/", training_views.dataset_detail, name="dataset"),
    path("jobs/", training_views.job_index, name="jobs"),
    path("jobs/<int:pk>/", training_views.job_detail, name="job"),
    path("jobs/<int:pk>/cancel/", training_views.job_cancel, name="job_cancel"),
]
