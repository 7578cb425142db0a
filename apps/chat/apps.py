from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"
    verbose_name = "Customer chat"

    def ready(self) -> None:
        # article changes -> index updates; CORS for the widget's routes
        from apps.chat import signals, widget_signals  # noqa: F401
