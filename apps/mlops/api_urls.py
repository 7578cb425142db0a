"""``/api/mlops/``: roles, datasets, training jobs and model versions."""

from django.urls import path

from apps.mlops import api, api_versions
from apps.mlops.api_explain import ModelVersionExplainApi

urlpatterns = [
    path("roles/", api.ModelRoleListApi.as_view(), name="api-mlops-roles"),
    path("roles/<str:role>/rollback/", api.ModelRoleRollbackApi.as_view(), name="api-mlops-role-rollback"),
    path("datasets/", api.DatasetListCreateApi.as_view(), name="api-mlops-datasets"),
    path("datasets/<int:pk>/", api.DatasetDetailApi.as_view(), name="api-mlops-dataset"),
    path("jobs/", api.TrainingJobListCreateApi.as_view(), name="api-mlops-jobs"),
    path("jobs/<int:pk>/", api.TrainingJobDetailApi.as_view(), name="api-mlops-job"),
    path("jobs/<int:pk>/cancel/", api.TrainingJobCancelApi.as_view(), name="api-mlops-job-cancel"),
    path("versions/", api_versions.ModelVersionListApi.as_view(), name="api-mlops-versions"),
    path("versions/<int:pk>/", api_versions.ModelVersionDetailApi.as_view(), name="api-mlops-version"),
    path("versions/<int:pk>/promote/", api_versions.ModelVersionPromoteApi.as_view(), name="api-mlops-version-promote"),
    path(
        "versions/<int:pk>/evaluate/", api_versions.ModelVersionEvaluateApi.as_view(), name="api-mlops-version-evaluate"
    ),
    path("versions/<int:pk>/explain/", ModelVersionExplainApi.as_view(), name="api-mlops-version-explain"),
    path(
        "versions/<int:pk>/abstention/",
        api_versions.ModelVersionAbstentionApi.as_view(),
        name="api-mlops-version-abstention",
    ),
]
