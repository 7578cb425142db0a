"""Model pages, mounted at ``/models/``."""

from django.urls import path

from apps.mlops import views

app_name = "mlops"

urlpatterns = [
    path("", views.models_overview, name="models"),
    path("roles/<str:role>/", views.role_detail, name="role"),
    path("roles/<str:role>/rollback/", views.role_rollback, name="role_rollback"),
    path("versions/<int:pk>/", views.version_detail, name="version"),
    path("versions/<int:pk>/promote/", views.version_promote, name="version_promote"),
    path("versions/<int:pk>/evaluate/", views.version_evaluate, name="version_evaluate"),
    path("versions/<int:pk>/abstention/", views.version_abstention, name="version_abstention"),
    path("datasets/", views.dataset_index, name="datasets"),
    path("datasets/upload/", views.dataset_upload, name="dataset_upload"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("jobs/", views.job_index, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job_cancel"),
]
