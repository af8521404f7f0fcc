"""ASGI entry point for Daphne: HTTP through Django, WebSockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devbench_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.ws_auth import APIKeyWebSocketMiddleware  # noqa: E402
from benches.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(APIKeyWebSocketMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

# Everything imported so far lives as long as the process: move it out of the collector's sight,
# so that a full collection scans only what requests left behind, not Django's ~134,000 objects
# (~100 ms each time). And collect the youngest generation every 10,000 allocations instead of
# 700: a request's objects then mostly die before a collection, instead of being scanned and
# promoted while the request still holds them (the API list's GC time per request 0.35 -> 0.18 ms;
# docs/PERFORMANCE.md, benchmark 4).
gc.freeze()
gc.set_threshold(10_000, 10, 10)
