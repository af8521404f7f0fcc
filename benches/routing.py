"""WebSocket routes: ``/`` (the original's ``new WebSocket('ws://localhost:9090')``) and ``/ws/``."""

from django.urls import path

from .consumers import BenchEventsConsumer

websocket_urlpatterns = [
    path("", BenchEventsConsumer.as_asgi()),
    path("ws/", BenchEventsConsumer.as_asgi()),
]
