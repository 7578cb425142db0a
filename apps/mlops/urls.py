from django.urls import path

from apps.mlops import views

app_name = "mlops"

urlpatterns = [
    path("", views.models_overview, name="models"),
]
