from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the signal receivers)


class DevBenchAdminConfig(AdminConfig):
    """The Django admin is DevBench's admin panel, served by our AdminSite."""

    default_site = "accounts.admin_site.DevBenchAdminSite"
