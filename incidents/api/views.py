"""Thin API views over the dashboard's selectors and filters and the ingestion service.

Authentication is a bearer token only (`authentication.BearerTokenAuthentication`): a browser
session does not reach these views, so they need no CSRF protection. Permissions are the
dashboard's (`incidents.roles`). Invalid parameters answer 400 with each parameter's messages,
as the dashboard does, never every row.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.generics import RetrieveAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import metrics, selectors
from incidents.api import serializers
from incidents.api.detail import detail_queryset
from incidents.api.ingest import MAX_RECORDS, TooManyRecords, ingest_body
from incidents.api.permissions import CanIngestFaults, CanViewIncidents, CanViewReports
from incidents.choices import OnCallState, Severity, Status
from incidents.filters import IncidentFilterSet
from incidents.forms import ListControlsForm
from incidents.models import Incident, TriageReport

_ERRORS = {
    401: OpenApiResponse(serializers.ErrorSerializer, description="No token, or not a valid one"),
    403: OpenApiResponse(serializers.ErrorSerializer, description="The token's user may not"),
    429: OpenApiResponse(serializers.ErrorSerializer, description="Too many requests"),
}


def _repeated(name: str, description: str, enum=None) -> OpenApiParameter:
    return OpenApiParameter(
        name, OpenApiTypes.STR, many=True, explode=True, enum=enum, description=description
    )


LIST_PARAMETERS = [
    _repeated("status", "Triage status; repeat for several.", Status.values),
    _repeated("oncall", "On-call state; repeat for several.", OnCallState.values),
    _repeated("severity", "Severity; repeat for several.", Severity.values),
    _repeated("cluster", "Cluster; repeat for several."),
    _repeated("namespace", "Resource namespace; repeat for several."),
    _repeated("resource_kind", "Resource kind; repeat for several."),
    _repeated("fault_type", "Fault type; repeat for several."),
    OpenApiParameter(
        "created_after", OpenApiTypes.STR, description="ISO date or datetime (naive: UTC)."
    ),
    OpenApiParameter(
        "created_before",
        OpenApiTypes.STR,
        description="ISO date (that whole day included) or datetime, exclusive.",
    ),
    _repeated("q", "Resource name (substring, 3+ characters), fault id or incident id."),
    OpenApiParameter("sort", OpenApiTypes.STR, enum=list(selectors.SORTS)),
    OpenApiParameter("after", OpenApiTypes.STR, description="From a `next` link."),
    OpenApiParameter("before", OpenApiTypes.STR, description="From a `previous` link."),
    OpenApiParameter("last", OpenApiTypes.BOOL, description="The last page."),
]
_PAGE_POSITION = ("after", "before", "last")


def _page_link(request: Request, **position: str) -> str:
    """This request's URL with the page position replaced (filters and sort kept)."""
    params = [
        (name, value)
        for name, values in request.query_params.lists()
        if name not in _PAGE_POSITION
        for value in values
    ]
    params += list(position.items())
    return request.build_absolute_uri(request.path + "?" + urlencode(params))


class IncidentListView(APIView):
    """The dashboard's list: the same filters, sorts and keyset pages (`next` / `previous`)."""

    permission_classes = [CanViewIncidents]

    @extend_schema(
        operation_id="incidents_list",
        parameters=LIST_PARAMETERS,
        responses={
            200: serializers.IncidentPageSerializer,
            400: OpenApiResponse(serializers.ErrorSerializer, description="Invalid parameters"),
            **_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        filterset = IncidentFilterSet(
            request.query_params, queryset=selectors.incident_list_queryset()
        )
        controls = ListControlsForm(request.query_params)
        if not (filterset.is_valid() and controls.is_valid()):
            errors = {**filterset.form.errors.get_json_data(), **controls.errors.get_json_data()}
            messages = {name: [e["message"] for e in items] for name, items in errors.items()}
            return Response({"detail": "Invalid parameters.", "errors": messages}, status=400)
        options = controls.cleaned_data
        try:
            page = selectors.paginate(
                filterset.qs,
                sort=selectors.SORTS[options["sort"]],
                after=options["after"] or None,
                before=options["before"] or None,
                last=options["last"],
            )
        except selectors.InvalidCursor as error:
            return Response(
                {"detail": f"{error}: start again without after/before.", "errors": {}},
                status=400,
            )
        count = selectors.capped_count(filterset.qs)
        body = {
            "count": count.value,
            "count_capped": count.capped,
            "next": _page_link(request, after=page.next_cursor) if page.next_cursor else None,
            "previous": (
                _page_link(request, before=page.previous_cursor) if page.previous_cursor else None
            ),
            "results": serializers.IncidentSerializer(
                page.rows, many=True, context={"request": request}
            ).data,
        }
        return Response(body)


class IncidentDetailView(RetrieveAPIView):
    """One incident with its fault context, on-call fields, executions, reports and timeline
    (newest first)."""

    permission_classes = [CanViewIncidents]
    serializer_class = serializers.IncidentDetailSerializer
    lookup_field = "incident_id"

    def get_queryset(self) -> QuerySet[Incident]:
        return detail_queryset()

    @extend_schema(operation_id="incidents_retrieve", responses={
        200: serializers.IncidentDetailSerializer,
        404: OpenApiResponse(serializers.ErrorSerializer, description="No such incident"),
        **_ERRORS,
    })  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ReportDetailView(RetrieveAPIView):
    """A report: its markdown as the agent wrote it, and rendered to sanitized HTML."""

    permission_classes = [CanViewReports]
    serializer_class = serializers.ReportSerializer
    lookup_field = "report_id"

    def get_queryset(self) -> QuerySet[TriageReport]:
        return selectors.report_queryset()

    @extend_schema(operation_id="reports_retrieve", responses={
        200: serializers.ReportSerializer,
        404: OpenApiResponse(serializers.ErrorSerializer, description="No such report"),
        **_ERRORS,
    })  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


FAULTS_BODY = {
    "oneOf": [
        {"type": "object", "description": "One fault record (a payload or an MCP notification)"},
        {"type": "array", "items": {"type": "object"}, "maxItems": MAX_RECORDS},
    ]
}


class FaultIngestView(APIView):
    """Fault records, as `ingest_events` takes them: one object or a JSON array (JSON Lines too).

    Every record is answered with its outcome; rejected ones carry the reason. The status is 200
    whenever the body was read, rejections included (see `counts.rejected`), like the command's
    summary; 413 for more than MAX_RECORDS records or a body over Django's upload limit.
    """

    permission_classes = [CanIngestFaults]
    parser_classes: list = []  # the body is read raw by incidents.streams, not by DRF

    @extend_schema(
        operation_id="faults_create",
        request={"application/json": FAULTS_BODY},
        responses={
            200: serializers.IngestResultSerializer,
            413: OpenApiResponse(serializers.ErrorSerializer, description="Too many records"),
            **_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        try:
            body = request.body
        except RequestDataTooBig as error:
            return Response({"detail": str(error)}, status=413)
        try:
            result = ingest_body(body)
        except TooManyRecords as error:
            return Response({"detail": str(error)}, status=413)
        metrics.count_ingested("api", result.counts)
        return Response(result.as_dict())
