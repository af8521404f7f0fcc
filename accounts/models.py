"""Accounts: the user model (letters-only usernames, unique case-insensitively), API keys and
the SSH public keys installed in a user's new benches."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower

from .validators import USERNAME_MAX_LENGTH, username_letters_only


class DevBenchUserManager(UserManager):
    def get_by_natural_key(self, username):
        """Sign-in is case-insensitive, as uniqueness is."""
        return self.get(username__iexact=username)


class User(AbstractUser):
    """A DevBench user. ``is_staff`` makes an admin; the bootstrap admin is also superuser."""

    username = models.CharField(
        max_length=USERNAME_MAX_LENGTH,
        unique=True,
        validators=[username_letters_only],
        help_text="Letters only; unique regardless of case.",
        error_messages={"unique": "Username already exists"},
    )
    email = models.EmailField()
    bench_quota = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Maximum number of benches for this user; empty uses the site default.",
    )
    vcpu_quota = models.PositiveIntegerField(
        null=True, blank=True, help_text="Maximum vCPUs of this user's benches together; empty uses the site default."
    )
    memory_quota_mib = models.PositiveIntegerField(
        null=True, blank=True, help_text="Maximum memory (MiB) of this user's benches together; empty: the default."
    )
    disk_quota_gib = models.PositiveIntegerField(
        null=True, blank=True, help_text="Maximum disk (GiB) of this user's benches together; empty: the default."
    )
    deletion_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when an admin deleted the user while remote resources were being removed.",
    )

    objects = DevBenchUserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="accounts_user_username_ci_unique"),
        ]

    @property
    def is_admin(self) -> bool:
        return self.is_staff


class APIKey(models.Model):
    """A named Bearer key for programs. Only a SHA-256 of the key is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class SSHKey(models.Model):
    """One of a user's SSH public keys, installed (with cloud-init) in each bench created after it
    was added. The line is stored normalised (``accounts.ssh_keys``)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="ssh_keys")
    name = models.CharField(max_length=100)
    public_key = models.TextField(help_text="One OpenSSH public key line.")
    fingerprint = models.CharField(max_length=64, help_text="SHA256, as ssh-keygen -l prints it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "SSH key"
        constraints = [
            models.UniqueConstraint(fields=["user", "fingerprint"], name="accounts_sshkey_unique_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"

    @property
    def key_type(self) -> str:
        return self.public_key.split(" ", 1)[0]
