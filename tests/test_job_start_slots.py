"""Start-up slots: at most N jobs of a worker process start at once; running jobs hold none."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from benches.provisioning.start_slots import StartSlots, holds_slot, job_start_slots, release_held_slot

SLOTS_LOGGER = "benches.provisioning.start_slots"


def _run_in_threads(count: int, target) -> None:
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)


@contextlib.contextmanager
def _slot_held_in_another_thread(slots: StartSlots) -> Iterator[threading.Thread]:
    """A thread that takes a slot and stays in its block until the with-block ends."""
    holding, done = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.slot():
            holding.set()
            done.wait(timeout=10)

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(timeout=10)
    try:
        yield thread
    finally:
        done.set()
        thread.join(timeout=10)


def test_at_most_size_threads_hold_a_slot_at_once():
    slots = StartSlots(2)
    lock = threading.Lock()
    inside = {"now": 0, "most": 0}
    got = []

    def job(_index: int) -> None:
        with slots.slot() as held:
            with lock:
                got.append(held)
                inside["now"] += 1
                inside["most"] = max(inside["most"], inside["now"])
            time.sleep(0.05)
            with lock:
                inside["now"] -= 1

    _run_in_threads(8, job)
    assert inside["most"] == 2
    assert got == [True] * 8
    assert slots.in_use() == 0


def test_release_held_slot_hands_the_slot_on_while_the_first_job_goes_on():
    slots = StartSlots(1)
    first_released, second_done = threading.Event(), threading.Event()
    seen = {}

    def first() -> None:
        with slots.slot() as held:
            seen["first"] = held
            release_held_slot()
            seen["first holds after"] = holds_slot()
            release_held_slot()  # again: gives back nothing more
            first_released.set()
            second_done.wait(timeout=10)  # still inside its block: its command runs
        seen["in use after both"] = slots.in_use()

    def second() -> None:
        first_released.wait(timeout=10)
        with slots.slot() as held:
            seen["second"] = held
            seen["in use while second holds"] = slots.in_use()
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == {"first": True, "first holds after": False, "second": True, "in use while second holds": 1,
                    "in use after both": 0}
    assert time.monotonic() - started < slots.wait_seconds  # the second did not wait out the timeout


def test_a_job_finding_no_free_slot_in_time_starts_without_one(caplog):
    slots = StartSlots(1, wait_seconds=0.1)
    with _slot_held_in_another_thread(slots), caplog.at_level(logging.INFO, logger=SLOTS_LOGGER):
        with slots.slot() as held:
            assert held is False
            assert holds_slot() is False
        assert slots.in_use() == 1  # its block's end gave back nothing: the holder's slot is still taken
    assert "no job start-up slot free after 0.1 s; starting without one" in caplog.text
    assert slots.in_use() == 0


def test_a_slot_held_too_long_is_taken_back(caplog):
    """A host that hangs while a command starts holds its slot for hold_seconds, not for ever."""
    slots = StartSlots(1, wait_seconds=5, hold_seconds=0.2)
    with _slot_held_in_another_thread(slots), caplog.at_level(logging.WARNING, logger=SLOTS_LOGGER):
        started = time.monotonic()
        with slots.slot() as held:
            waited = time.monotonic() - started
            assert held is True
    # (the hung job's late give-back, at the end of the with above, frees nothing twice)
    assert 0.1 < waited < 4  # got the slot once the hung job's lease ran out, not after wait_seconds
    assert "a job held its start-up slot for over 0.2 s; the slot is taken back" in caplog.text
    assert slots.in_use() == 0
    with slots.slot() as held:
        assert held is True and slots.in_use() == 1


def test_zero_slots_means_no_limit():
    slots = StartSlots(0)
    barrier = threading.Barrier(5, timeout=5)
    outcomes = []

    def job(_index: int) -> None:
        with slots.slot() as held:
            try:
                barrier.wait()  # all five inside at once
                outcomes.append(held)
            except threading.BrokenBarrierError:
                outcomes.append("not together")

    _run_in_threads(5, job)
    assert outcomes == [False] * 5


def test_a_nested_slot_keeps_the_outer_one():
    slots = StartSlots(2)
    with slots.slot() as outer:
        with slots.slot() as inner:
            assert (outer, inner, slots.in_use()) == (True, False, 1)
        assert holds_slot() and slots.in_use() == 1
    assert not holds_slot() and slots.in_use() == 0


def test_release_held_slot_without_a_slot_does_nothing():
    slots = StartSlots(1)
    release_held_slot()
    with slots.slot() as held:
        assert held is True and slots.in_use() == 1


def test_a_slot_goes_back_to_the_slots_it_came_from(settings):
    settings.DEVBENCH_JOB_START_SLOTS = 3
    first = job_start_slots()
    assert first.size == 3 and job_start_slots() is first
    with first.slot():
        settings.DEVBENCH_JOB_START_SLOTS = 1
        assert job_start_slots().size == 1
        release_held_slot()
        assert first.in_use() == 0
