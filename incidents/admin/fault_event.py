"""Fault event admin: corrections that every incident of the fault follows, atomically.

The fault id is the identity upstream sends and never changes. A saved correction goes through
`DjangoStateStore.correct_fault_event`, which writes the fault row and the denormalized copies on
all its incidents in one transaction.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from incidents.admin.common import ResourceSearchMixin, StoreBackedAdmin, describe_changes
from incidents.admin.context import pretty_context
from incidents.admin.dates import IndexedDatesChangeList
from incidents.admin.filters import IndexedValuesListFilter
from incidents.context import NotJSON, load_context
from incidents.models import FaultEvent, Incident
from incidents.store import DjangoStateStore

RESOURCE_LABEL_FIELDS = ("resource_namespace", "resource_kind", "resource_name")
HISTORY_BATCH_SIZE = 1000

# What staff may correct, in form order; each one is copied onto the fault's incidents.
CORRECTABLE_FIELDS = (
    "fault_type",
    "severity",
    "cluster",
    "subscription_id",
    "resource_api_version",
    "resource_kind",
    "resource_namespace",
    "resource_name",
    "resource_uid",
    "timestamp",
    "context",
)


class FaultEventForm(forms.ModelForm):
    """The correctable fields of a fault event; a changed context must be JSON, like upstream's."""

    history_message: str  # what save_model changed, for the history entry

    class Meta:
        model = FaultEvent
        fields = CORRECTABLE_FIELDS
        widgets = {"context": forms.Textarea(attrs={"rows": 12, "cols": 100})}

    def clean_context(self) -> str:
        text = self.cleaned_data["context"]
        if text and "context" in self.changed_data:
            try:
                load_context(text)
            except NotJSON as error:
                raise ValidationError(
                    f"The context of fault event {self.instance.pk} must be JSON text: {error}."
                ) from None
        return text


def incident_count() -> Coalesce:
    """Incidents per fault as a correlated subquery: counted for the page's rows only."""
    per_fault = (
        Incident.objects.filter(fault=OuterRef("pk"))
        .order_by()
        .values("fault")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(per_fault, output_field=IntegerField()), 0)


def log_on_incidents(request: HttpRequest, event: FaultEvent, message: str) -> None:
    """One history entry on each incident of `event`, written in batches.

    Runs in the change form's transaction, with the correction itself: the incidents' history
    and their new values commit together. Only the columns `Incident.__str__` needs are read.
    """
    incidents = (
        Incident.objects.filter(fault_id=event.pk)
        .order_by()
        .only("incident_id", "status", "fault_type", *RESOURCE_LABEL_FIELDS)
        .iterator(chunk_size=HISTORY_BATCH_SIZE)
    )
    user_id = request.user.pk
    if user_id is None:  # never: the admin signs everyone in
        raise PermissionDenied("the history names a signed-in user")
    while batch := list(islice(incidents, HISTORY_BATCH_SIZE)):
        LogEntry.objects.log_actions(user_id, batch, CHANGE, message)


@admin.register(FaultEvent)
class FaultEventAdmin(ResourceSearchMixin, StoreBackedAdmin):
    form = FaultEventForm
    list_display = (
        "fault_id",
        "fault_type",
        "severity",
        "cluster",
        "resource",
        "timestamp",
        "incidents",
    )
    list_filter = (
        "severity",
        ("cluster", IndexedValuesListFilter),
        ("fault_type", IndexedValuesListFilter),
        ("resource_kind", IndexedValuesListFilter),
        ("resource_namespace", IndexedValuesListFilter),
    )
    exact_search_fields = ("fault_id",)
    search_help_text = "Part of a resource name; a whole namespace, resource uid or fault id."
    date_hierarchy = "timestamp"
    ordering = ("-timestamp",)
    list_select_related = ()  # no foreign keys to follow
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: seconds on 1 M rows
    list_per_page = 50
    readonly_fields = ("fault_id", "received_at", "incidents", "context_pretty")
    fieldsets = (
        (None, {"fields": ("fault_id", "received_at", "incidents")}),
        (
            "Correction (saving copies each changed field onto all of this fault's incidents)",
            {
                "fields": (
                    ("fault_type", "severity"),
                    ("cluster", "subscription_id"),
                    ("resource_kind", "resource_api_version"),
                    ("resource_namespace", "resource_name", "resource_uid"),
                    "timestamp",
                    "context",
                )
            },
        ),
        ("Context, formatted", {"fields": ("context_pretty",), "classes": ("collapse",)}),
    )

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[IndexedDatesChangeList]:
        return IndexedDatesChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(incident_total=incident_count())

    # -- permissions -----------------------------------------------------------------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # fault events come from ingestion, with their incident

    def has_delete_permission(self, request: HttpRequest, obj: FaultEvent | None = None) -> bool:
        """Superusers only, and only a fault with no incidents: incidents are history."""
        if not (request.user.is_superuser and super().has_delete_permission(request, obj)):
            return False
        if obj is None:
            return True  # the bulk action; Django refuses protected rows on its confirmation page
        total = getattr(obj, "incident_total", None)
        if total is None:
            return not obj.incidents.exists()
        return total == 0

    # -- columns and read-only fields ------------------------------------------------------------
    @admin.display(description="resource", ordering="resource_name")
    def resource(self, event: FaultEvent) -> str:
        return event.resource_label

    @admin.display(description="incidents")
    def incidents(self, event: FaultEvent) -> str:
        total = getattr(event, "incident_total", None)
        if total is None:
            total = event.incidents.count()
        if not total:
            return "0"
        url = reverse("admin:incidents_incident_changelist") + "?" + urlencode({"q": event.pk})
        return format_html('<a href="{}">{}</a>', url, total)

    @admin.display(description="context")
    def context_pretty(self, event: FaultEvent) -> str:
        return pretty_context(event.context)

    # -- saving: through the store ---------------------------------------------------------------
    def save_model(
        self, request: HttpRequest, obj: FaultEvent, form: FaultEventForm, change: bool
    ) -> None:
        """Correct the changed fields with `correct_fault_event`; never `obj.save()`."""
        changes: dict[str, Any] = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in CORRECTABLE_FIELDS
        }
        if not changes:
            form.history_message = ""
            return
        event, updated = DjangoStateStore().correct_fault_event(obj.pk, by=request.user, **changes)
        lines = "; ".join(
            describe_changes(
                form.initial, {name: getattr(event, name) for name in changes}, changes
            )
        )
        noun = "incident" if updated == 1 else "incidents"
        form.history_message = f"{lines}; copied to {updated} {noun}"
        log_on_incidents(request, event, f"{lines} (corrected on fault event {event.pk})")
