"""The Celery application: workers run SSH provisioning and Kubernetes reconciliation."""

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from .garbage_collection import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devbench_site.settings")

app = Celery("devbench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
@worker_process_init.connect
def _freeze_worker_startup_objects(**kwargs) -> None:
    """A ready worker (and each prefork child) keeps its start-up objects out of the collector's
    scans: a full collection of them stopped every running job's output for 100-250 ms."""
    freeze_startup_objects()
