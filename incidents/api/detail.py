"""The query behind the API's incident detail (GET and the on-call POSTs' answers)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from incidents import selectors
from incidents.models import AgentExecution, Incident, IncidentActivity, TriageReport

# The newest rows of the timeline: an incident that fires all day has thousands of repeats,
# and a detail answer stays one bounded read (the dashboard page has the whole history).
TIMELINE_LIMIT = 50


def detail_queryset() -> QuerySet[Incident]:
    """The dashboard's detail query with the timeline cut to its newest TIMELINE_LIMIT rows
    (a sliced prefetch: one query for any number of incidents)."""
    return (
        selectors.incident_detail_queryset()
        .prefetch_related(None)
        .prefetch_related(
            Prefetch("executions", queryset=AgentExecution.objects.order_by("-started_at")),
            Prefetch("reports", queryset=TriageReport.objects.order_by("-generated_at")),
            Prefetch(
                "activity",
                queryset=IncidentActivity.objects.select_related("actor").order_by("-at", "-id")[
                    :TIMELINE_LIMIT
                ],
                to_attr="timeline",
            ),
        )
    )
