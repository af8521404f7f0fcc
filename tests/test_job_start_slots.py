"""Start-up slots: at most N jobs of a worker process start at once; running jobs hold none."""

from __future__ import annotations

import logging
import threading
import time

from benches.provisioning.start_slots import StartSlots, job_start_slots


def _run_in_threads(count: int, target) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    return threads


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
            time.sleep(0.02)
            with lock:
                inside["now"] -= 1

    for thread in _run_in_threads(8, job):
        thread.join(timeout=10)
    assert inside["most"] == 2
    assert got == [True] * 8


def test_release_hands_the_slot_on_while_the_first_job_goes_on():
    slots = StartSlots(1)
    first_released, second_done = threading.Event(), threading.Event()
    seen = {}

    def first() -> None:
        with slots.slot() as held:
            seen["first"] = held
            slots.release()
            seen["first_holds_after_release"] = slots.holds_slot()
            first_released.set()
            second_done.wait(timeout=10)  # still inside its block: its command runs

    def second() -> None:
        first_released.wait(timeout=10)
        with slots.slot() as held:
            seen["second"] = held
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == {"first": True, "first_holds_after_release": False, "second": True}
    assert time.monotonic() - started < slots.wait_seconds  # the second did not wait out the timeout
    # Given back exactly once each: one slot is free again, and only one.
    with slots.slot() as held:
        assert held is True
        assert slots._semaphore.acquire(blocking=False) is False


def test_a_job_finding_no_free_slot_in_time_starts_without_one(caplog):
    slots = StartSlots(1, wait_seconds=0.05)
    holding, done = threading.Event(), threading.Event()

    def holder() -> None:
        with slots.slot():
            holding.set()
            done.wait(timeout=10)

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(timeout=10)
    with caplog.at_level(logging.INFO, logger="benches.provisioning.start_slots"):
        with slots.slot() as held:
            assert held is False
            assert slots.holds_slot() is False
    assert "no job start-up slot free after 0.1 s; starting without one" in caplog.text
    # Its block's end gave back nothing: the holder's slot is still taken.
    assert slots._semaphore.acquire(blocking=False) is False
    done.set()
    thread.join(timeout=10)
    assert slots._semaphore.acquire(blocking=False) is True


def test_zero_slots_means_no_limit():
    slots = StartSlots(0)
    barrier = threading.Barrier(5, timeout=5)
    got = []

    def job(_index: int) -> None:
        with slots.slot() as held:
            got.append(held)
            barrier.wait()  # all five inside at once, or BrokenBarrierError

    for thread in _run_in_threads(5, job):
        thread.join(timeout=10)
    assert got == [False] * 5


def test_release_without_a_slot_does_nothing():
    slots = StartSlots(1)
    slots.release()  # a BoundedSemaphore would raise on a release too many
    with slots.slot() as held:
        assert held is True


def test_the_process_slots_follow_the_setting(settings):
    settings.DEVBENCH_JOB_START_SLOTS = 3
    assert job_start_slots().size == 3
    assert job_start_slots() is job_start_slots()
    settings.DEVBENCH_JOB_START_SLOTS = 1
    assert job_start_slots().size == 1
