"""The compatible bench routes (exact paths), plus start/stop/cancel in the same style and the
dashboard's card fragments."""

from django.urls import path

from . import views

urlpatterns = [
    path("dashboard", views.dashboard, name="dashboard"),
    path("dashboard/cards", views.bench_cards, name="bench-cards"),
    path("dashboard/cards/<id:object_id>", views.bench_card, name="bench-card"),
    path("help", views.help_page, name="help"),
    path("help/ssh-config", views.ssh_config_download, name="ssh-config"),
    path("create-devbench", views.create_devbench, name="create-devbench"),
    path("delete-devbench/<id:object_id>", views.delete_devbench, name="delete-devbench"),
    path("activate-devbench/<id:object_id>", views.activate_devbench, name="activate-devbench"),
    path("start-devbench/<id:object_id>", views.start_devbench, name="start-devbench"),
    path("stop-devbench/<id:object_id>", views.stop_devbench, name="stop-devbench"),
    path("check-status/<id:object_id>", views.check_status, name="check-status"),
    path("cancel-job/<id:object_id>", views.cancel_job, name="cancel-job"),
]
