from django.apps import AppConfig


class BenchesConfig(AppConfig):
    name = "benches"
    verbose_name = "DevBenches"
