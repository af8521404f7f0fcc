"""Validation rules for account fields (the original's username rule)."""

from django.core.validators import RegexValidator

USERNAME_MAX_LENGTH = 32

username_letters_only = RegexValidator(
    regex=r"\A[a-zA-Z]+\Z",
    message="Username must contain letters only",
    code="invalid_username",
)
