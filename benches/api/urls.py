"""``/api/v1/benches/``, ``/api/v1/jobs/``,
``/api/v1/images/``, ``/api/v1/plans/``, ``/api/v1/hosts/`` (mounted by devbench_site.api.urls)."""

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("benches", views.BenchViewSet, basename="api-bench")
router.register("jobs", views.JobViewSet, basename="api-job")
router.register("images", views.ImageViewSet, basename="api-image")
router.register("plans", views.PlanViewSet, basename="api-plan")
router.register("hosts", views.HostViewSet, basename="api-host")

urlpatterns = router.urls
