"""The benches API: benches and their actions, jobs and their logs, hosts (admins). Thin: each
endpoint parses with a serializer, calls ``benches.services`` / ``benches.selectors`` (the same
functions as the compatible routes, the admin panel and the tasks) and renders the result."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from devbench_site.api.parsing import parse_body, parse_query
from devbench_site.api.permissions import IsAdmin
from devbench_site.api.schema import documented_error
from devbench_site.converters import ObjectIdConverter

from .. import selectors, services
from ..models import DevBench, Host, Job
from . import serializers as s

ID_REGEX = ObjectIdConverter.regex  # as the compatible routes: a huge id is a 404, not an overflow
JOB_ACCEPTED = OpenApiResponse(s.JobSerializer, description="Queued: the job that carries the action out.")
# Any one path segment: the service says what a snapshot name may be (one message for every route).
SNAPSHOT_PATH_REGEX = r"[^/]{1,100}"
SNAPSHOT_PARAMETER = OpenApiParameter("snapshot", str, OpenApiParameter.PATH, description="The snapshot's name.")
BUSY = documented_error(409, "Another change of this bench is under way, or it is being deleted.")


@extend_schema_view(
    list=extend_schema(summary="List your benches", parameters=[s.BenchFilterSerializer]),
    retrieve=extend_schema(summary="One of your benches"),
)
class BenchViewSet(viewsets.GenericViewSet):
    """Your DevBenches. Another user's bench is not found (404)."""

    serializer_class = s.BenchSerializer
    queryset = DevBench.objects.none()  # for the schema's id type; reads go through the selectors
    lookup_value_regex = ID_REGEX

    def get_serializer_class(self):
        return s.BenchCreateSerializer if self.action == "create" else s.BenchSerializer

    def list(self, request: Request) -> Response:
        filters = parse_query(s.BenchFilterSerializer, request)
        page = self.paginate_queryset(selectors.bench_list_for(request.user, **filters))
        return self.get_paginated_response(s.BenchSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a bench",
        description="Records the bench (status `creating`) and queues its create job; the job's output and "
        "the status follow on the WebSocket and at `GET /api/v1/jobs/{latestJobId}/log/`. Checks, in order: "
        "the name, the image and plan, duplicates, your quotas (benches, vCPUs, memory, disk), the hourly "
        "creation limit, a host that has the image and a free place.",
        request=s.BenchCreateSerializer,
        responses={
            201: s.BenchSerializer,
            429: documented_error(429, "Too many requests, or too many benches created this hour."),
            503: documented_error(503, "No host has the image and a free place."),
        },
    )
    def create(self, request: Request) -> Response:
        data = parse_body(s.BenchCreateSerializer, request)
        bench = services.create_bench(
            user=request.user, name=data["name"], image=data.get("image"), plan=data.get("plan")
        )
        bench = selectors.bench_detail_for_owner(request.user, bench.pk)
        return Response(s.BenchSerializer(bench).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.BenchSerializer(selectors.bench_detail_for_owner(request.user, pk)).data)

    @extend_schema(
        summary="Delete a bench",
        description="Queues the remote delete (202, the delete job); the bench stays with status `deleting` "
        "until it succeeded. A bench never started on its host is removed at once (204).",
        responses={202: JOB_ACCEPTED, 204: OpenApiResponse(description="Removed at once."), 409: BUSY},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        bench = selectors.bench_for_owner(request.user, pk)
        job = services.delete_bench(bench=bench, actor=request.user)
        if job is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    def _command(self, request: Request, pk: str, command: str) -> Response:
        bench = selectors.bench_for_owner(request.user, pk)
        job = services.request_command(bench=bench, command=command, actor=request.user)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(operation_id="benches_activate", summary="Activate a bench", request=None,
                   responses={202: JOB_ACCEPTED, 409: BUSY})
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str) -> Response:
        return self._command(request, pk, Job.Command.ACTIVATE)

    @extend_schema(operation_id="benches_start", summary="Start a bench", request=None,
                   responses={202: JOB_ACCEPTED, 409: BUSY})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        return self._command(request, pk, Job.Command.START)

    @extend_schema(operation_id="benches_stop", summary="Stop a bench", request=None,
                   responses={202: JOB_ACCEPTED, 409: BUSY})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        return self._command(request, pk, Job.Command.STOP)

    @extend_schema(
        operation_id="benches_refresh_status",
        summary="Check a bench's status now",
        description="Runs the status command on the host and stores the result (as the original's "
        "`GET /check-status/{id}`). While a create or delete is under way, the stored status.",
        request=None,
        responses={200: s.BenchStatusSerializer},
    )
    @action(detail=True, methods=["post"], url_path="refresh-status")
    def refresh_status(self, request: Request, pk: str) -> Response:
        bench = selectors.bench_for_owner(request.user, pk)
        return Response({"status": services.check_status(bench=bench, actor=request.user)})

    @extend_schema(
        summary="A bench's jobs", parameters=[s.JobFilterSerializer], responses=s.JobSerializer(many=True)
    )
    @action(detail=True, methods=["get"])
    def jobs(self, request: Request, pk: str) -> Response:
        bench = selectors.bench_for_owner(request.user, pk)
        filters = parse_query(s.JobFilterSerializer, request)
        page = self.paginate_queryset(selectors.jobs_of_bench(bench, **filters))
        return self.get_paginated_response(s.JobSerializer(page, many=True).data)

    @extend_schema(methods=["get"], summary="A bench's snapshots", responses=s.SnapshotSerializer(many=True))
    @extend_schema(
        methods=["post"],
        summary="Take a snapshot",
        description="Queues the snapshot job (202). 409 when the bench's host does not take snapshots or the bench "
        "is busy; 400 for a bad or duplicate name or past the per-bench limit.",
        request=s.SnapshotCreateSerializer,
        responses={202: JOB_ACCEPTED, 409: BUSY},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def snapshots(self, request: Request, pk: str) -> Response:
        bench = selectors.bench_for_owner(request.user, pk)
        if request.method == "GET":
            return Response(s.SnapshotSerializer(selectors.snapshots_of(bench), many=True).data)
        data = parse_body(s.SnapshotCreateSerializer, request)
        job = services.take_snapshot(bench=bench, name=data["name"], actor=request.user)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="benches_snapshots_restore", summary="Restore a snapshot",
        description="Queues the restore (202); a running VM is stopped first and stays stopped.",
        parameters=[SNAPSHOT_PARAMETER], request=None, responses={202: JOB_ACCEPTED, 409: BUSY},
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path=rf"snapshots/(?P<snapshot>{SNAPSHOT_PATH_REGEX})/restore")
    def restore_snapshot(self, request: Request, pk: str, snapshot: str) -> Response:
        bench = selectors.bench_for_owner(request.user, pk)
        job = services.restore_snapshot(bench=bench, name=snapshot, actor=request.user)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="benches_snapshots_destroy", summary="Delete a snapshot",
        description="Queues the snapshot's removal from the host (202).",
        parameters=[SNAPSHOT_PARAMETER], request=None, responses={202: JOB_ACCEPTED, 409: BUSY},
    )  # fmt: skip
    @action(detail=True, methods=["delete"], url_path=rf"snapshots/(?P<snapshot>{SNAPSHOT_PATH_REGEX})")
    def delete_snapshot(self, request: Request, pk: str, snapshot: str) -> Response:
        bench = selectors.bench_for_owner(request.user, pk)
        job = services.delete_snapshot(bench=bench, name=snapshot, actor=request.user)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(list=extend_schema(summary="The images you can create a bench from"))
class ImageViewSet(viewsets.GenericViewSet):
    """The enabled images (default first); a create names one by its ``name``."""

    serializer_class = s.ImageSerializer
    pagination_class = None

    def list(self, request: Request) -> Response:
        return Response(s.ImageSerializer(selectors.images_offered(), many=True).data)


@extend_schema_view(list=extend_schema(summary="The plans (sizes) you can create a bench with"))
class PlanViewSet(viewsets.GenericViewSet):
    """The enabled plans, smallest first; a create names one by its ``name``."""

    serializer_class = s.PlanSerializer
    pagination_class = None

    def list(self, request: Request) -> Response:
        return Response(s.PlanSerializer(selectors.plans_offered(), many=True).data)


@extend_schema_view(retrieve=extend_schema(summary="One of your jobs"))
class JobViewSet(viewsets.GenericViewSet):
    """Jobs of your benches (they outlive a deleted bench). Another user's job is not found (404)."""

    serializer_class = s.JobSerializer
    queryset = Job.objects.none()
    lookup_value_regex = ID_REGEX

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.JobSerializer(selectors.job_detail_for_owner(request.user, pk)).data)

    @extend_schema(
        operation_id="jobs_log",
        summary="A job's output",
        description="The stored chunks after `after`, in order. `next` is set when the page is full; while "
        "`finished` is false more may come: ask again with `after=lastSeq` (or use the WebSocket's replay). "
        "The text leaves out terminal control sequences; `raw=1` gives it as the script wrote it.",
        parameters=[s.JobLogQuerySerializer],
        responses={200: s.JobLogSerializer},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def log(self, request: Request, pk: str) -> Response:
        query = parse_query(s.JobLogQuerySerializer, request)
        after, limit = query.get("after", 0), query.get("limit", 500)
        job = selectors.job_for_owner(request.user, pk)  # read before the chunks: finished means complete
        chunks = list(selectors.job_log_after(job, after, limit + 1))
        more = len(chunks) > limit
        chunks = chunks[:limit]
        last_seq = chunks[-1].seq if chunks else after
        next_url = None
        if more:
            next_url = replace_query_param(request.build_absolute_uri(), "after", last_seq)
        return Response({
            "results": s.LogChunkSerializer(chunks, many=True, context={"raw": query.get("raw", False)}).data,
            "next": next_url,
            "lastSeq": last_seq,
            "finished": job.is_finished,
        })

    @extend_schema(
        operation_id="jobs_cancel",
        summary="Cancel a job",
        description="A queued job is cancelled at once; a running one is asked to stop within a second or so "
        "(its `state` is then still `running`).",
        request=None,
        responses={202: OpenApiResponse(s.JobSerializer, description="Cancelled, or asked to stop."),
                   409: documented_error(409, "The job has already finished.")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        job = services.cancel_job(job=selectors.job_for_owner(request.user, pk), actor=request.user)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="List hosts (admins)"),
    retrieve=extend_schema(summary="One host (admins)"),
)
class HostViewSet(viewsets.GenericViewSet):
    """Hypervisor hosts. Admins only."""

    serializer_class = s.HostSerializer
    queryset = Host.objects.none()
    permission_classes = [IsAuthenticated, IsAdmin]
    lookup_value_regex = ID_REGEX

    def get_serializer_class(self):
        return {"create": s.HostCreateSerializer, "partial_update": s.HostUpdateSerializer}.get(
            self.action, s.HostSerializer
        )

    def _render(self, host_id: int | str, **kwargs) -> Response:
        return Response(s.HostSerializer(selectors.host_with_bench_count(host_id)).data, **kwargs)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.hosts_with_bench_counts())
        return self.get_paginated_response(s.HostSerializer(page, many=True).data)

    @extend_schema(
        summary="Register an SSH host (admins)",
        description="Its host key is pinned from `knownHostsFile`, else on the first connection.",
        request=s.HostCreateSerializer,
        responses={201: s.HostSerializer},
    )
    def create(self, request: Request) -> Response:
        host = services.register_host(**parse_body(s.HostCreateSerializer, request))
        return self._render(host.pk, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return self._render(pk)

    @extend_schema(summary="Change a host's settings (admins)", request=s.HostUpdateSerializer,
                   responses={200: s.HostSerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        host = selectors.host_with_bench_count(pk)
        changes = parse_body(s.HostUpdateSerializer, request, partial=True)
        private_key = changes.pop("private_key", "")
        services.update_host(host=host, changes=changes, private_key=private_key)
        return self._render(pk)

    @extend_schema(
        summary="Delete a host without benches (admins)",
        responses={204: OpenApiResponse(description="Deleted."),
                   409: documented_error(409, "The host still has benches.")},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_host(host=selectors.host_with_bench_count(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="hosts_disable", summary="Disable a host: no new benches on it (admins)", request=None,
                   responses={200: s.HostSerializer})
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk: str) -> Response:
        services.set_host_enabled(host=selectors.host_with_bench_count(pk), enabled=False)
        return self._render(pk)

    @extend_schema(operation_id="hosts_enable", summary="Enable a host (admins)", request=None,
                   responses={200: s.HostSerializer})
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str) -> Response:
        services.set_host_enabled(host=selectors.host_with_bench_count(pk), enabled=True)
        return self._render(pk)

    @extend_schema(
        operation_id="hosts_test_connection",
        summary="Test the connection to a host (admins)",
        description="Runs a harmless command (`true`) on the host and reports the round trip and the host "
        "key it presented. Always 200: `ok` says whether the host answered, `error` why not. An unpinned "
        "key is pinned, as on any first connection.",
        request=None,
        responses={200: s.ConnectionCheckSerializer},
    )
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request: Request, pk: str) -> Response:
        result = services.check_host_connection(host=selectors.host_with_bench_count(pk))
        return Response(s.ConnectionCheckSerializer(result).data)
