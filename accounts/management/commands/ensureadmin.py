"""Create the bootstrap admin from DEVBENCH_ADMIN_* unless it exists; print a generated
password once."""

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts import services


class Command(BaseCommand):
    help = "Create the bootstrap admin account (DEVBENCH_ADMIN_USERNAME) if it does not exist."

    def handle(self, *args, **options):
        user, generated = services.ensure_admin(
            username=settings.DEVBENCH_ADMIN_USERNAME,
            email=settings.DEVBENCH_ADMIN_EMAIL,
            password=settings.DEVBENCH_ADMIN_PASSWORD,
        )
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin account '{user.username}' with password: {generated}\n"
                    "This password is shown only once. Change it in the admin panel."
                )
            )
