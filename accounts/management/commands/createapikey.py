"""Print a new API key for a user: ``manage.py createapikey USERNAME [--name NAME]``."""

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import User
from devbench_site.errors import DomainError


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A name to recognise the key by.")

    def handle(self, *args, username, name, **options):
        user = User.objects.filter(username__iexact=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}")
        try:
            _key, raw_key = services.create_api_key(user=user, name=name or "command line")
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(raw_key)
