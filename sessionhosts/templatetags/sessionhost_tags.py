"""``{% session_host_url user %}``: the public URL of a user's session host, for the dashboard card."""

from __future__ import annotations

from django import template

from sessionhosts.config import SessionHostConfig

register = template.Library()


@register.simple_tag
def session_host_url(user) -> str:
    """``https://<username>.<domain>/``."""
    return SessionHostConfig.from_settings().url_for(user.username)
