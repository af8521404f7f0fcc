"""What a dashboard card's cached fragment is keyed on, for one card and for the whole list."""

from __future__ import annotations

from collections.abc import Iterable

from django import template

from ..models import DevBench

register = template.Library()


@register.filter
def card_version(bench: DevBench | None) -> tuple:
    """The values a card shows that may change: the bench's id and ``updated_at``, and those that
    can change without ``updated_at`` (some failures write the status and error alone; the latest
    job; the host's names and capabilities; the snapshots)."""
    if bench is None:
        return ()
    return (bench.pk, bench.updated_at, bench.status, bench.last_error, bench.latest_job_id,
            bench.host.name, bench.host.connect_name, bench.host.backend, tuple(bench.host.capabilities or ()),
            tuple(snapshot.name for snapshot in bench.snapshots.all()))


@register.filter
def cards_version(benches: Iterable[DevBench]) -> list[tuple]:
    """Every card's version, in order: the list's fragment is reused while no card changed, with
    one cache read instead of one per card."""
    return [card_version(bench) for bench in benches]
