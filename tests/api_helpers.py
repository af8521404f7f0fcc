"""Helpers for the API tests: clients that authenticate with a Bearer API key."""

from __future__ import annotations

import json

from django.test import Client

from accounts import services as account_services


def bearer_client(user, *, enforce_csrf_checks: bool = False) -> Client:
    """A client sending ``Authorization: Bearer <a new key of user>`` on every request."""
    _key, raw = account_services.create_api_key(user=user, name="tests")
    return Client(enforce_csrf_checks=enforce_csrf_checks, headers={"Authorization": f"Bearer {raw}"})


def post_json(client: Client, path: str, body=None, **extra):
    return client.post(path, data=json.dumps(body if body is not None else {}), content_type="application/json",
                       **extra)


def patch_json(client: Client, path: str, body, **extra):
    return client.patch(path, data=json.dumps(body), content_type="application/json", **extra)
