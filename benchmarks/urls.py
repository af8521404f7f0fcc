"""DevBench's routes plus ``/_bench/trivial`` (signed-in, a constant body) and
``/_bench/trivial-anonymous``: the ceilings the HTTP benchmark compares real pages with."""

from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_GET

from accounts.decorators import sign_in_required
from devbench_site.urls import handler400, handler403, handler404, handler500  # noqa: F401


@require_GET
def trivial_anonymous(request):
    return HttpResponse(b"ok", content_type="text/plain")


trivial = require_GET(sign_in_required(lambda request: HttpResponse(b"ok", content_type="text/plain")))

urlpatterns = [
    path("_bench/trivial", trivial),
    path("_bench/trivial-anonymous", trivial_anonymous),
    path("", include("devbench_site.urls")),
]
