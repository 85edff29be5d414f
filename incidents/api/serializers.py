"""The API's JSON shapes (read-only: every write goes through a service or the store)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.api.oncall_serializers import ActivitySerializer, UsernameField
from incidents.ingest import Outcome
from incidents.models import AgentExecution, Incident, TriageReport
from incidents.rendering import render_cached
from incidents.selectors import LIST_FIELDS

HEADLINE_SCAN_LINES = 20  # a report's title is its first heading, near the top


def headline(markdown: str) -> str | None:
    """The first markdown heading of a report (its title), without the #s; None without one."""
    for line in markdown.splitlines()[:HEADLINE_SCAN_LINES]:
        stripped = line.strip()
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if text:
                return text[:200]
    return None


def _absolute(request, name: str, pk) -> str:
    return request.build_absolute_uri(reverse(name, args=[pk]))


class IncidentSerializer(serializers.ModelSerializer):
    """An incident as the list shows it, with links to itself in the API and the dashboard."""

    url = serializers.SerializerMethodField()
    html_url = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields: tuple[str, ...] = (*LIST_FIELDS, "url", "html_url")

    def get_url(self, incident: Incident) -> str:
        return _absolute(self.context["request"], "api:incident", incident.incident_id)

    def get_html_url(self, incident: Incident) -> str:
        return _absolute(self.context["request"], "incidents:detail", incident.incident_id)


class IncidentPageSerializer(serializers.Serializer):
    """One keyset page. `count` stops at `count_cap`: `count_capped` says there are more."""

    count = serializers.IntegerField()
    count_capped = serializers.BooleanField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = IncidentSerializer(many=True)


class ExecutionSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = AgentExecution
        fields = (
            "execution_id",
            "started_at",
            "completed_at",
            "exit_code",
            "error_message",
            "duration_seconds",
        )

    @extend_schema_field(OpenApiTypes.DOUBLE)
    def get_duration_seconds(self, execution: AgentExecution) -> float | None:
        duration = execution.duration
        return None if duration is None else duration.total_seconds()


class ReportLinkSerializer(serializers.ModelSerializer):
    """A report in an incident: its id, title and where to read it."""

    execution_id = serializers.UUIDField(source="execution.pk", read_only=True)
    headline = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    html_url = serializers.SerializerMethodField()
    raw_url = serializers.SerializerMethodField()

    class Meta:
        model = TriageReport
        fields: tuple[str, ...] = (
            "report_id",
            "execution_id",
            "generated_at",
            "headline",
            "url",
            "html_url",
            "raw_url",
        )

    @extend_schema_field(OpenApiTypes.STR)
    def get_headline(self, report: TriageReport) -> str | None:
        return headline(report.report_markdown)

    def get_url(self, report: TriageReport) -> str:
        return _absolute(self.context["request"], "api:report", report.report_id)

    def get_html_url(self, report: TriageReport) -> str:
        return _absolute(self.context["request"], "incidents:report", report.report_id)

    def get_raw_url(self, report: TriageReport) -> str:
        return _absolute(self.context["request"], "incidents:report-raw", report.report_id)


class IncidentDetailSerializer(IncidentSerializer):
    """An incident with its fault context (JSON text, as stored), its on-call fields,
    executions and reports, and its timeline (the newest TIMELINE_LIMIT rows), newest first."""

    executions = ExecutionSerializer(many=True, read_only=True)
    reports = ReportLinkSerializer(many=True, read_only=True)
    assignee = UsernameField()
    acknowledged_by = UsernameField()
    closed_by = UsernameField()
    timeline = ActivitySerializer(many=True, read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = (
            *IncidentSerializer.Meta.fields,
            "subscription_id",
            "resource_api_version",
            "resource_uid",
            "context",
            "assignee",
            "acknowledged_at",
            "acknowledged_by",
            "closed_at",
            "closed_by",
            "resolution",
            "resolution_note",
            "executions",
            "reports",
            "timeline",
        )


class ReportSerializer(ReportLinkSerializer):
    """A report: the agent's markdown and the same markdown rendered to sanitized HTML."""

    incident_id = serializers.UUIDField(source="incident.pk", read_only=True)
    incident_url = serializers.SerializerMethodField()
    html = serializers.SerializerMethodField()

    class Meta(ReportLinkSerializer.Meta):
        fields = (
            *ReportLinkSerializer.Meta.fields,
            "incident_id",
            "incident_url",
            "report_markdown",
            "html",
        )

    def get_incident_url(self, report: TriageReport) -> str:
        return _absolute(self.context["request"], "api:incident", report.incident_id)

    def get_html(self, report: TriageReport) -> str:
        return str(render_cached(report.report_markdown).html)


class RecordOutcomeSerializer(serializers.Serializer):
    """One posted record: its position (0-based), the line it starts on, and how it ended."""

    index = serializers.IntegerField()
    line = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=[outcome.value for outcome in Outcome])
    reason = serializers.CharField(required=False)


class IngestCountsSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    coalesced = serializers.IntegerField()
    silenced = serializers.IntegerField()
    rejected = serializers.IntegerField()
    ignored = serializers.IntegerField()


class IngestResultSerializer(serializers.Serializer):
    """The outcome of each record, the counts, and `ingest_events`' summary line."""

    results = RecordOutcomeSerializer(many=True)
    counts = IngestCountsSerializer()
    summary = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """An error: a sentence, and for invalid parameters the messages of each."""

    detail = serializers.CharField()
    # The stubs see Serializer.errors here, but DRF's metaclass pops declared fields out of
    # the class, so the property is untouched.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()), required=False
    )
