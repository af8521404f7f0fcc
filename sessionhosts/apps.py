from django.apps import AppConfig


class SessionhostsConfig(AppConfig):
    name = "sessionhosts"
    verbose_name = "Session hosts"
