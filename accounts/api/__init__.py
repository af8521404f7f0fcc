"""The accounts app's part of the JSON API (``/api/v1/me/``, ``api-keys/``, ``users/``)."""
