from django.apps import AppConfig
from django.core import checks


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from apps.core.async_middleware import middleware_security_check

        checks.register(middleware_security_check, checks.Tags.security, deploy=True)
