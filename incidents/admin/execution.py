"""Agent execution admin: the record of what the agent did, shown and never edited."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from incidents.admin.common import IdSearchMixin, admin_change_link
from incidents.admin.dates import IndexedDatesChangeList
from incidents.admin.filters import IndexedValuesListFilter
from incidents.admin.incident import ReportInline
from incidents.models import AgentExecution


class OutcomeFilter(admin.SimpleListFilter):
    """Running, succeeded (exit code 0) or failed (any other exit code, or none recorded)."""

    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        return (("running", "Running"), ("succeeded", "Succeeded"), ("failed", "Failed"))

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        finished = Q(completed_at__isnull=False)
        if self.value() == "running":
            return queryset.filter(completed_at__isnull=True)
        if self.value() == "succeeded":
            return queryset.filter(finished, exit_code=0)
        if self.value() == "failed":
            return queryset.filter(finished).exclude(exit_code=0)
        return queryset


@admin.register(AgentExecution)
class AgentExecutionAdmin(IdSearchMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "incident",
        "started_at",
        "completed_at",
        "exit_code",
        "error_summary",
    )
    list_filter = (
        OutcomeFilter,
        "incident__status",
        "incident__severity",
        ("incident__cluster", IndexedValuesListFilter),
    )
    search_fields = ("error_message",)
    uuid_search_fields = ("execution_id", "incident_id")
    search_help_text = "Part of the error message, or a whole execution or incident id."
    date_hierarchy = "started_at"
    ordering = ("-started_at",)
    list_select_related = ("incident",)  # the incident column shows the incident's summary
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: seconds on 1 M rows
    list_per_page = 50
    fields = (
        "execution_id",
        "incident_link",
        ("started_at", "completed_at", "duration"),
        "exit_code",
        "error_message",
        "log_path_lines",
    )
    readonly_fields = (
        "execution_id",
        "incident_link",
        "started_at",
        "completed_at",
        "duration",
        "exit_code",
        "error_message",
        "log_path_lines",
    )
    inlines = (ReportInline,)

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[IndexedDatesChangeList]:
        return IndexedDatesChangeList

    # History: executions are written by the worker and kept as they happened.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="execution", ordering="execution_id")
    def short_id(self, execution: AgentExecution) -> str:
        return str(execution.execution_id)[:8]

    @admin.display(description="error message")
    def error_summary(self, execution: AgentExecution) -> str:
        text = " ".join(execution.error_message.split())
        return text if len(text) <= 80 else text[:79] + "…"

    @admin.display(description="incident")
    def incident_link(self, execution: AgentExecution) -> str:
        return admin_change_link(execution.incident)

    @admin.display(description="log files")
    def log_path_lines(self, execution: AgentExecution) -> str:
        return "\n".join(execution.log_path_list) or "(none)"
