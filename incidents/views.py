"""Thin views over selectors and filters: the dashboard's pages, its CSV export, and /healthz.

Every view but healthz (and Django's login view) requires a signed-in user through
LoginRequiredMiddleware, and the pages require the view permissions of `incidents.roles` (the
viewer group has them): a signed-in user without them gets 403. Ids in URLs are UUID
converters: a malformed id never reaches a view.
"""

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django.views.generic import DetailView, TemplateView
from django.views.generic.detail import SingleObjectMixin

from incidents import failures, live, oncall_views, selectors
from incidents.budget import budget_state
from incidents.choices import Resolution, Status
from incidents.context import printable
from incidents.filters import IncidentFilterSet
from incidents.forms import ListControlsForm
from incidents.models import AgentExecution, Incident, TriageReport
from incidents.quality.views import report_quality_context
from incidents.rendering import render_cached
from incidents.report_summary import summarize_report
from incidents.rerun_views import RerunForm, can_rerun
from incidents.roles import RESPOND, VIEW_INCIDENTS, VIEW_REPORTS
from triage_site.replicas import replica_health


@login_not_required
@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, 503 when it does not (for load balancers and probes).

    With read replicas, each one's state and replay lag is reported too; a replica that is down
    or lagging is skipped by the router, so it makes the answer "degraded", never a 503.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    body: dict[str, object] = {"status": "ok", "database": "ok"}
    replicas = replica_health()
    if replicas:
        body["replicas"] = {health.alias: health.as_json() for health in replicas}
        if not all(health.ok for health in replicas):
            body["status"] = "degraded"
    return JsonResponse(body)


# --- the dashboard ----------------------------------------------------------------------------


def _filter_cache_key(filterset: IncidentFilterSet) -> str:
    """A stable text for the filter's cleaned values (identical filters, identical key)."""
    normalized = {
        name: sorted(value) if isinstance(value, list) else value
        for name, value in filterset.form.cleaned_data.items()
        if value not in (None, "", [])
    }
    return json.dumps(normalized, sort_keys=True, default=str)


def _sort_toggles(sort_key: str) -> dict[str, str | None]:
    """The `sort` each column header links to: its other direction when it is the current sort.
    None removes the parameter (the default, newest first)."""
    return {
        "created_next": "created" if sort_key == selectors.DEFAULT_SORT else None,
        "last_seen_next": "last_seen" if sort_key == "-last_seen" else "-last_seen",
        "occurrences_next": "occurrences" if sort_key == "-occurrences" else "-occurrences",
        "severity_next": "-severity" if sort_key == "severity" else "severity",
        "status_next": "-status" if sort_key == "status" else "status",
    }


@dataclass(frozen=True)
class RangePreset:
    label: str
    after: str | None  # the created_after date; None: no lower bound
    active: bool


def _range_presets(request: HttpRequest) -> list[RangePreset]:
    """One-click time ranges (whole UTC days, today included)."""
    today = timezone.now().astimezone(UTC).date()
    current = request.GET.get("created_after") if "created_before" not in request.GET else "-"
    presets = [("All time", None), ("Today", 0), ("7 days", 6), ("30 days", 29), ("90 days", 89)]
    result = []
    for label, days_back in presets:
        after = None if days_back is None else (today - timedelta(days=days_back)).isoformat()
        result.append(RangePreset(label=label, after=after, active=current == after))
    return result


class IncidentListView(PermissionRequiredMixin, TemplateView):
    """The dashboard: filters, summary counts and chart over a window, and a keyset-paged list.

    Invalid filters or page links answer 400 with the form's errors and no rows.
    """

    permission_required = VIEW_INCIDENTS

    template_name = "incidents/incident_list.html"

    def get_queryset(self) -> QuerySet[Incident]:
        return selectors.incident_list_queryset()

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        filterset = IncidentFilterSet.with_default(request.GET, queryset=self.get_queryset())
        controls = ListControlsForm(request.GET)
        context = self.get_context_data(filterset=filterset, controls=controls)
        listing = self.listing(filterset, controls)
        default_view = filterset.is_default
        context.update(
            listing or {},
            valid=listing is not None,
            refresh_seconds=live.refresh_seconds(request),
            refresh_choices=live.REFRESH_LABELS,
            # What needs a human, for the tab's title: the default view's own count when shown.
            needs_human=listing["count"] if listing and default_view else live.needs_a_human(),
            seen=live.seen(
                live.last_look(request),
                listing["page"],
                newest_first=listing["sort_key"] == selectors.DEFAULT_SORT,
            )
            if listing
            else None,
            presets=_range_presets(request),
            default_window_days=selectors.DEFAULT_WINDOW_DAYS,
            max_chart_days=selectors.MAX_CHART_DAYS,
            summary_cache_seconds=selectors.SUMMARY_CACHE_SECONDS,
            default_view=default_view,
            # An empty default view says how incidents arrive when there are none at all.
            no_incidents=bool(listing and not listing["page"].rows and filterset.is_default)
            and not Incident.objects.exists(),
            # Links built from the query keep the default view's filter (the state in the URL).
            list_query=filterset.data,
            whole_history=oncall_views.whole_history_query(),
            resolutions=Resolution.choices,
            can_respond=request.user.has_perm(RESPOND),
            budget=budget_state(),  # today's spend, and whether the budget paused the agents
        )
        response = self.render_to_response(context, status=200 if listing is not None else 400)
        return live.forget_auto_reload(response)

    @staticmethod
    def listing(filterset: IncidentFilterSet, controls: ListControlsForm) -> dict | None:
        """The page, count and summary for valid parameters; None (errors on the forms) else."""
        if not (filterset.is_valid() and controls.is_valid()):
            return None
        options = controls.cleaned_data
        queryset = filterset.qs
        sort = selectors.SORTS[options["sort"]]
        count = selectors.capped_count(queryset)
        # "Last" shows exactly the rows after the last full page when the count is exact, so it
        # is the page "Next" would reach; beyond the count's bound it is the last PAGE_SIZE.
        size = selectors.PAGE_SIZE
        if options["last"] and not count.capped and count.value % size:
            size = count.value % size
        try:
            page = selectors.paginate(
                queryset,
                sort=sort,
                after=options["after"] or None,
                before=options["before"] or None,
                last=options["last"],
                size=size,
            )
        except selectors.InvalidCursor as error:
            controls.add_error(None, f"{error}: start again from the newest incidents.")
            return None
        time_range = filterset.time_range()
        window = selectors.summary_window(
            time_range.start,
            time_range.end,
            column=time_range.column,
            relative=time_range.quick,
        )
        return {
            "page": page,
            "position": selectors.page_position(queryset, sort=sort, page=page, total=count),
            "sort_key": options["sort"],
            "sort_label": sort.label.lower(),
            **_sort_toggles(options["sort"]),
            "count": count,
            "summary": selectors.summarize(
                queryset, window, cache_key=_filter_cache_key(filterset)
            ),
            "time_range": time_range,
            "range_description": time_range.description,
            "filtered": filterset.active,
        }


CSV_COLUMNS = (
    "incident_id",
    "status",
    "severity",
    "cluster",
    "resource_namespace",
    "resource_kind",
    "resource_name",
    "fault_type",
    "fault_id",
    "created_at",
    "started_at",
    "completed_at",
    "seconds_to_start",
    "duration_seconds",
    "exit_code",
    "failure_reason",
)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streaming response."""

    def write(self, value: str) -> str:
        return value


def _csv_text(value: object) -> str:
    """A cell: datetimes in ISO 8601, text that a spreadsheet would run as a formula defused."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.0f}"


def _csv_lines(rows: Iterable[Incident]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in rows:
        yield writer.writerow(
            [
                _csv_text(row.incident_id),
                _csv_text(row.status),
                _csv_text(row.severity),
                _csv_text(row.cluster),
                _csv_text(row.resource_namespace),
                _csv_text(row.resource_kind),
                _csv_text(row.resource_name),
                _csv_text(row.fault_type),
                _csv_text(row.fault_id),
                _csv_text(row.created_at),
                _csv_text(row.started_at),
                _csv_text(row.completed_at),
                _seconds(row.created_at, row.started_at),
                _seconds(row.started_at, row.completed_at),
                _csv_text(row.exit_code),
                _csv_text(row.failure_reason),
            ]
        )


class IncidentExportView(PermissionRequiredMixin, View):
    """The filtered list as CSV, newest first, every matching row, streamed (flat memory).

    Takes the list's query string; sort and page position are ignored. Invalid filters: 400 with
    the errors as text. More than TRIAGE_EXPORT_MAX_ROWS matching rows: 422 with a message,
    before the first byte of CSV. A 200 is therefore always the whole file, written well within
    the server's request timeout: a million rows used to be cut at gunicorn's 30 s, after a 200
    and on a line boundary, with nothing to tell the spreadsheet it was short.
    """

    permission_required = VIEW_INCIDENTS

    def get(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        filterset = IncidentFilterSet.with_default(
            request.GET, queryset=selectors.incident_list_queryset()
        )
        if not filterset.is_valid():
            lines = [f"{name}: {' '.join(messages)}" for name, messages in filterset.errors.items()]
            return HttpResponse(
                "Invalid filter.\n" + "\n".join(lines) + "\n",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        limit = settings.TRIAGE_EXPORT_MAX_ROWS
        if selectors.capped_count(filterset.qs, limit).capped:
            return HttpResponse(
                f"More than {limit:,} incidents match this filter: the export stops at "
                f"{limit:,} rows (TRIAGE_EXPORT_MAX_ROWS) so that a file always arrives whole.\n"
                "Narrow the filter (status, cluster, created_after/created_before) and export "
                "the parts.\n",
                status=422,
                content_type="text/plain; charset=utf-8",
            )
        # Sliced too: rows that arrive between the count and the read cannot push it past.
        response = StreamingHttpResponse(
            _csv_lines(selectors.export_rows(filterset.qs, limit=limit)),
            content_type="text/csv; charset=utf-8",
        )
        response["X-Export-Row-Limit"] = str(limit)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="incidents-{stamp}.csv"'
        return response


class IncidentDetailView(PermissionRequiredMixin, DetailView):
    """One incident: every field, lifecycle, fault context and logs, executions, reports (the
    newest rendered), other occurrences of its fault. Unknown or malformed id: 404."""

    permission_required = VIEW_INCIDENTS

    template_name = "incidents/incident_detail.html"
    context_object_name = "incident"
    pk_url_kwarg = "incident_id"

    def get_queryset(self) -> QuerySet[Incident]:
        return selectors.incident_detail_queryset()

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        incident: Incident = self.object
        reports = list(incident.reports.all())
        executions = list(incident.executions.all())
        context.update(
            executions=executions,
            reports=reports,
            latest_report=render_cached(reports[0].report_markdown) if reports else None,
            report_summary=summarize_report(reports[0].report_markdown) if reports else None,
            **failure_context(incident, executions),
            recurrences=selectors.recurrences(incident),
            timeline=list(incident.activity.all()),
            **oncall_views.detail_context(self.request, incident),
            rerun_form=RerunForm() if can_rerun(self.request.user) else None,
        )
        return context


def failure_context(incident: Incident, executions: list[AgentExecution]) -> dict:
    """For a failed or agent_failed incident: what happened in words, and the newest run's
    stdout and stderr tails (and the refused report when it was too small)."""
    if incident.status not in (Status.FAILED, Status.AGENT_FAILED):
        return {"failure": None}
    context: dict = {"failure": failures.explain(incident), "tail_lines": failures.TAIL_LINES}
    if not executions:
        return {**context, "log_tails": [], "undersized_report": None}
    latest = executions[0]
    small = "report too small" in (incident.failure_reason or "")
    return {
        **context,
        "failed_execution": latest,
        "log_tails": [failures.log_tail(latest, stream) for stream in ("stderr", "stdout")],
        "undersized_report": failures.undersized_report(latest) if small else None,
    }


class ExecutionLogView(PermissionRequiredMixin, SingleObjectMixin, View):
    """One of an execution's logs, whole, as text/plain: the file the worker recorded for the
    stream, read only from inside TRIAGE_WORKSPACE_ROOT (see `incidents.failures`). A log that
    cannot be read answers 404 with the reason, never with the server's path."""

    permission_required = VIEW_INCIDENTS
    pk_url_kwarg = "execution_id"

    def get_queryset(self) -> QuerySet[AgentExecution]:
        return AgentExecution.objects.only("execution_id", "log_paths")

    def get(self, request: HttpRequest, *args, stream: str, **kwargs) -> HttpResponse:
        execution = self.get_object()
        try:
            data = failures.read_log(execution, stream)
        except failures.LogUnavailable as error:
            return HttpResponse(
                f"No {stream} log to show: {error}.\n",
                status=404,
                content_type="text/plain; charset=utf-8",
            )
        text = printable(data.decode("utf-8", errors="replace"))
        response = HttpResponse(text, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = (
            f'inline; filename="agent-{execution.execution_id}.{stream}.log"'
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response


class ReportDetailView(PermissionRequiredMixin, DetailView):
    """A report rendered from its markdown (sanitized), with its table of contents."""

    permission_required = VIEW_REPORTS

    template_name = "incidents/report_detail.html"
    context_object_name = "report"
    pk_url_kwarg = "report_id"

    def get_queryset(self) -> QuerySet[TriageReport]:
        return selectors.report_queryset()

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        context["rendered"] = render_cached(self.object.report_markdown)
        context.update(report_quality_context(self.request, self.object))
        return context


class ReportRawView(PermissionRequiredMixin, SingleObjectMixin, View):
    """The report's markdown as written by the agent, as `text/markdown`."""

    permission_required = VIEW_REPORTS

    pk_url_kwarg = "report_id"

    def get_queryset(self) -> QuerySet[TriageReport]:
        return TriageReport.objects.only("report_id", "report_markdown")

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        report = self.get_object()
        response = HttpResponse(report.report_markdown, content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="report-{report.report_id}.md"'
        return response
