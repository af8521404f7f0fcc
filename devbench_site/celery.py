"""The Celery application: workers run SSH provisioning and Kubernetes reconciliation."""

import gc
import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devbench_site.settings")

app = Celery("devbench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _freeze_before_forking(**kwargs) -> None:
    """Freeze what the worker loaded before its prefork pool forks the children.

    A child that collects garbage writes to the header of every object it scans, and each write
    copies the page holding it out of the memory shared with the parent. Frozen objects are never
    scanned, so the children keep sharing Django's, Celery's and paramiko's start-up objects with
    the parent instead of each holding a private copy of them.
    """
    gc.collect()
    gc.freeze()
