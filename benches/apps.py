from django.apps import AppConfig


class BenchesConfig(AppConfig):
    name = "benches"
    verbose_name = "DevBenches"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the signal receivers)
