"""The Celery application: workers run SSH provisioning and Kubernetes reconciliation."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devbench_site.settings")

app = Celery("devbench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
