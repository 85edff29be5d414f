"""Triage report admin: a sanitized preview, and markdown that re-renders when corrected."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest

from incidents.admin.common import (
    IdSearchMixin,
    StoreBackedAdmin,
    admin_change_link,
    public_report_link,
)
from incidents.admin.dates import IndexedDatesChangeList
from incidents.admin.filters import IndexedValuesListFilter
from incidents.models import TriageReport
from incidents.rendering import render, sanitize
from incidents.store import DjangoStateStore


class ReportChangeList(IndexedDatesChangeList):
    """The report list without the report texts: a report can be hundreds of kilobytes."""

    def get_queryset(self, request: HttpRequest, exclude_parameters=None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer("report_markdown", "report_html")


class TriageReportForm(forms.ModelForm):
    history_message: str  # what save_model changed, for the history entry

    class Meta:
        model = TriageReport
        fields = ["report_markdown"]
        widgets = {"report_markdown": forms.Textarea(attrs={"rows": 30, "cols": 100})}


@admin.register(TriageReport)
class TriageReportAdmin(IdSearchMixin, StoreBackedAdmin):
    form = TriageReportForm
    list_display = ("short_id", "incident", "execution_ref", "generated_at", "rendered")
    list_filter = (
        "incident__status",
        "incident__severity",
        ("incident__cluster", IndexedValuesListFilter),
    )
    search_fields = ("incident__resource_name",)
    uuid_search_fields = ("report_id", "incident_id", "execution_id")
    search_help_text = (
        "The incident's resource name (part of it), or a whole report, incident or execution id."
    )
    date_hierarchy = "generated_at"
    ordering = ("-generated_at",)
    list_select_related = ("incident",)  # the incident column shows the incident's summary
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: seconds on 1 M rows
    list_per_page = 50
    readonly_fields = (
        "report_id",
        "incident_link",
        "execution_link",
        "generated_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "report_id",
                    "incident_link",
                    "execution_link",
                    "generated_at",
                )
            },
        ),
        (
            "Markdown (saving re-renders the HTML)",
            {"fields": ("report_markdown",)},
        ),
    )

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return ReportChangeList

    # History: reports are kept; they are corrected, not added or removed here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="report", ordering="report_id")
    def short_id(self, report: TriageReport) -> str:
        return str(report.report_id)[:8]

    @admin.display(description="execution")
    def execution_ref(self, report: TriageReport) -> str:
        return str(report.execution_id)[:8]

    @admin.display(description="incident")
    def incident_link(self, report: TriageReport) -> str:
        return admin_change_link(report.incident)

    @admin.display(description="execution")
    def execution_link(self, report: TriageReport) -> str:
        return admin_change_link(report.execution)

    @admin.display(description="page")
    def rendered(self, report: TriageReport) -> str:
        return public_report_link(report.report_id)

    def preview(self, report: TriageReport) -> str:
        """The stored HTML, sanitized again on the way out (or rendered now if missing)."""
        if report.report_html:
            return sanitize(report.report_html)
        return render(report.report_markdown).html

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Shown above the fieldsets by templates/admin/incidents/triagereport/change_form.html.
        if obj is not None:
            context["report_preview"] = self.preview(obj)
            context["report_page"] = public_report_link(obj.report_id, "open the dashboard page")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(
        self, request: HttpRequest, obj: TriageReport, form: TriageReportForm, change: bool
    ) -> None:
        """Store the corrected markdown through the store, which re-renders report_html."""
        if "report_markdown" not in form.changed_data:
            form.history_message = ""
            return
        before = form.initial.get("report_markdown") or ""
        obj.report_html = None  # the store renders a missing report_html from the markdown
        DjangoStateStore().record_triage_report(obj)
        form.history_message = (
            f"Report markdown: {len(before):,} → {len(obj.report_markdown):,} characters; "
            "HTML re-rendered"
        )
