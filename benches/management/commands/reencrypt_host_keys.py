"""Re-encrypt every stored private key (hosts', and each bench's own key) with the current SECRET_KEY.

``python manage.py reencrypt_host_keys`` — run after rotating SECRET_KEY with the old key in
SECRET_KEY_FALLBACKS; once it reports no failures the old key can leave the fallbacks.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from benches.provisioning import host_keys


class Command(BaseCommand):
    help = "Re-encrypt every stored private key (hosts and benches) with the current SECRET_KEY."

    def handle(self, *args, **options):
        done, failed = host_keys.reencrypt_stored_private_keys()
        self.stdout.write(f"Re-encrypted {len(done)} stored private key(s) with the current SECRET_KEY.")
        if failed:
            raise CommandError(
                f"Could not decrypt the private key of: {', '.join(failed)}; {host_keys.UNDECRYPTABLE_ADVICE}"
            )
