"""Signals other apps listen to, so that accounts never imports them."""

from django.dispatch import Signal

# Sent with ``user`` and ``actor`` after an admin deleted a user: apps that own remote
# resources (benches, session hosts) start removing them.
user_deletion_requested = Signal()
