from django.apps import AppConfig


class SessionhostsConfig(AppConfig):
    name = "sessionhosts"
    verbose_name = "Session hosts"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the user-deletion receiver)
