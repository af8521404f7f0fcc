"""Session-host routes, mounted under /api/v1/."""

from django.urls import path

from . import views

urlpatterns = [
    path("pods/session-host", views.EnsureSessionHostView.as_view(), name="sessionhost-ensure"),
    path("pods/session-host/<str:user>/status", views.SessionHostStatusView.as_view(), name="sessionhost-status"),
]
