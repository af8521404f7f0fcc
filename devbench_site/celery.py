"""The Celery application: workers run SSH provisioning and Kubernetes reconciliation."""

import os

from celery import Celery
from celery.signals import worker_init, worker_ready

from .garbage_collection import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devbench_site.settings")

app = Celery("devbench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_ready.connect
def _freeze_worker_startup_objects(**kwargs) -> None:
    """A worker keeps its start-up objects out of the collector's scans: a full collection of
    them stopped every running job's output for 100-250 ms. Frozen once before the pool starts
    (prefork children inherit it without copying the heap to collect it again) and once more when
    the worker is ready (what the pool and the consumer made)."""
    freeze_startup_objects()
