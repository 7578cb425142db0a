from django.apps import AppConfig


class RecommendConfig(AppConfig):
    name = "apps.recommend"
    label = "recommend"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        from apps.recommend import signals  # noqa: F401  (item changes -> index updates; widget CORS)
