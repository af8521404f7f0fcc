"""ASGI entry point for Daphne: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devbench_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.ws_auth import APIKeyWebSocketMiddleware  # noqa: E402
from benches.routing import websocket_urlpatterns  # noqa: E402
from devbench_site.garbage_collection import freeze_startup_objects  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(APIKeyWebSocketMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

# Everything imported so far lives as long as the process: out of the collector's sight with it
# (devbench_site/garbage_collection.py). And collect the youngest generation every 10,000
# allocations instead of 700: a request's objects then mostly die before a collection, instead of
# being scanned and promoted while the request still holds them (the API list's GC time per
# request 0.35 -> 0.18 ms; docs/PERFORMANCE.md, benchmark 4).
freeze_startup_objects(young_threshold=10_000)
