"""The garbage collector's settings for DevBench's long-running processes (Daphne, the workers).

A full collection scans every object the process tracks. Right after start-up that is Django's,
Celery's and paramiko's ~130,000-200,000 objects, and a collection stops every thread of the
process for 100-250 ms (measured in the log-streaming benchmark, docs/PERFORMANCE.md): every
job's output, or every WebSocket frame, waits that long. What start-up created lives as long as
the process, so it is moved out of the collector's sight once the process is ready.
"""

from __future__ import annotations

import gc


def freeze_startup_objects(*, young_threshold: int | None = None) -> None:
    """Collect once, then freeze everything alive so later collections scan only newer objects.

    ``young_threshold`` changes how many allocations trigger a collection of the youngest
    generation (Python's default is 700); None keeps it.
    """
    gc.collect()
    gc.freeze()
    if young_threshold is not None:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)
