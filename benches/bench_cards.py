"""The dashboard's bench cards, each rendered once per content and kept in the cache.

A card shows a handful of fields; its cache key is a digest of exactly those values, of the
viewer's VM user name, of the time zone and of the card template's source. Any change to what a
card shows is therefore a new key: nothing is invalidated by hand and a stale card cannot be
served. Two levels:

- the user's whole list, under one key per user, with a fingerprint of every card's values
  (taken by the database, ``selectors.bench_card_fingerprint``): the steady state of a dashboard
  with 100 benches is one query answering one short value, and one GET;
- when the list changed, each card by its own digest (one MGET): only cards whose content is new
  are rendered (their full rows fetched with one more query) and stored with one MSET.

Without the cache (Redis away) every card is rendered, as before.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from django.core.cache import cache
from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from accounts.models import User

from . import selectors
from .models import DevBench

CARD_TEMPLATE = "benches/_bench_card.html"
CARD_SECONDS = 24 * 3600  # a card whose content changed is not asked for again and expires
LIST_SECONDS = 24 * 3600  # one list per user, overwritten when it changes


def values_of(bench: DevBench) -> tuple:
    """A bench's card values, read from the instance as ``selectors.BENCH_CARD_FIELDS`` names them
    (``host__name`` is ``bench.host.name``), so they equal the database's rows for the same bench."""
    return tuple(functools.reduce(getattr, field.split("__"), bench) for field in selectors.BENCH_CARD_FIELDS)


def _template_digest() -> str:
    """Digest of the card template's source (cheap: the loaders keep it): a changed template
    makes every key new, in development too."""
    source = get_template(CARD_TEMPLATE).template.source
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def _digest_function(vm_username: str):
    """Digest of card values, for one viewer and the current template and time zone."""
    context = (_template_digest(), vm_username, timezone.get_current_timezone_name())

    def digest(values: object) -> str:
        return hashlib.blake2b(repr((values, context)).encode(), digest_size=16).hexdigest()

    return digest


def _render(bench: DevBench | None, vm_username: str) -> str:
    return get_template(CARD_TEMPLATE).render({"bench": bench, "vm_username": vm_username})


@dataclass(frozen=True)
class DashboardCards:
    cards: SafeString  # one card per bench, in the dashboard's order
    blank: SafeString  # the empty card the page's script clones for a bench created there
    count: int


def dashboard_cards(user: User, vm_username: str) -> DashboardCards:
    """The user's bench cards, from the cache where their content was rendered before.

    One query for the cards' fingerprint and one GET; when anything changed, one query for the
    values with their fingerprint, one MGET for the cards and, for those not found, one query for
    their rows and one MSET.
    """
    digest = _digest_function(vm_username)
    list_key = f"bench-cards:user:{user.pk}"
    list_digest = digest(selectors.bench_card_fingerprint(user))
    stored = cache.get(list_key)
    if stored is not None and stored[0] == list_digest:
        cards_html, blank_html, count = stored[1]
    else:
        # The list is stored under the fingerprint of exactly the values it shows.
        rows, fingerprint = selectors.bench_card_values_and_fingerprint(user)
        list_digest = digest(fingerprint)
        cards_html, blank_html, count, exact = _cards_by_content(user, vm_username, rows, digest)
        if exact:  # every card shows the values ``list_digest`` was taken of
            cache.set(list_key, (list_digest, (cards_html, blank_html, count)), LIST_SECONDS)
    return DashboardCards(
        cards=mark_safe(cards_html),  # noqa: S308 - rendered templates
        blank=mark_safe(blank_html),  # noqa: S308 - a rendered template
        count=count,
    )


def _cards_by_content(user: User, vm_username: str, rows: list[tuple], digest) -> tuple[str, str, int, bool]:
    """The cards for ``rows`` from the per-card cache, rendering (and storing) those not in it;
    the last value says whether the cards show exactly ``rows`` (no row changed or went away)."""
    def key(values: tuple | None) -> str:
        return f"bench-card:{digest(values)}"

    blank_key = key(None)
    keys = [key(values) for values in rows]
    found = cache.get_many([blank_key, *keys])
    fresh: dict[str, str] = {}
    if blank_key not in found:
        found[blank_key] = fresh[blank_key] = _render(None, vm_username)
    missing = {values[0]: card_key for card_key, values in zip(keys, rows, strict=True) if card_key not in found}
    exact = True
    if missing:
        rendered = 0
        for bench in selectors.benches_for(user).filter(pk__in=missing):
            html = _render(bench, vm_username)
            # Stored under the values it was rendered from: the row may have changed since ``rows``.
            card_key = key(values_of(bench))
            fresh[card_key] = html
            found[missing[bench.pk]] = html
            exact = exact and card_key == missing[bench.pk]
            rendered += 1
        exact = exact and rendered == len(missing)
    if fresh:
        cache.set_many(fresh, CARD_SECONDS)
    cards = [found[card_key] for card_key in keys if card_key in found]  # deleted meanwhile: no card
    return "".join(cards), found[blank_key], len(cards), exact
