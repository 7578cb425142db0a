from django.apps import AppConfig


class SentimentConfig(AppConfig):
    name = "apps.sentiment"
    label = "sentiment"
    verbose_name = "Financial sentiment"

    def ready(self) -> None:
        from apps.sentiment.services.alerting import scores_committed_receiver
        from apps.sentiment.signals import scores_committed

        # Alert rules and the live feed follow every committed scoring batch.
        scores_committed.connect(scores_committed_receiver, dispatch_uid="sentiment-alerts")
