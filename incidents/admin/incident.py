"""Incident admin: the lifecycle edited through the StateStore, never by writing the row.

The change form validates a status edit against the incident as it is *now* (the row is locked
for the rest of the request's transaction), then `save_model` asks the store to make the move.
The bulk actions do the same per row. Every change leaves a LogEntry that says old → new.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from incidents.admin.common import (
    ReadOnlyInline,
    ResourceSearchMixin,
    StoreBackedAdmin,
    describe_changes,
    public_report_link,
)
from incidents.admin.context import pretty_context
from incidents.admin.dates import IndexedDatesChangeList
from incidents.admin.filters import IndexedValuesListFilter
from incidents.choices import TERMINAL_STATUSES, Resolution, Status
from incidents.models import DENORMALIZED_FIELDS, AgentExecution, Incident, TriageReport
from incidents.store import DjangoStateStore, InvalidTransition, Refusal, StoreError

# What a lifecycle move can change, in the order history messages list them.
LIFECYCLE_FIELDS = ("status", "started_at", "completed_at", "exit_code", "failure_reason")
OUTCOME_FIELDS = ("exit_code", "failure_reason")


def status_label(value: str) -> str:
    return Status(value).label if value in Status.values else str(value)


ONCALL_FIELDS = ("oncall_state", "assignee", "resolution")


def snapshot(incident: Incident) -> dict[str, Any]:
    """Lifecycle and on-call fields, as history messages show them."""
    values = lifecycle_snapshot(incident)
    values["oncall_state"] = incident.get_oncall_state_display()
    values["assignee"] = incident.assignee.get_username() if incident.assignee else None
    values["resolution"] = incident.get_resolution_display() if incident.resolution else None
    return values


def lifecycle_snapshot(incident: Incident) -> dict[str, Any]:
    """The fields a lifecycle move can change, as history messages show them."""
    values = {name: getattr(incident, name) for name in LIFECYCLE_FIELDS}
    values["status"] = status_label(values["status"])
    return values


def allowed_moves_text(incident: Incident) -> str:
    """What the store allows the incident now (the admin keeps no copy of the lifecycle)."""
    targets = DjangoStateStore().allowed_transitions(incident)
    return ", ".join(status_label(target) for target in targets) or "nothing"


def refusal_text(error: InvalidTransition) -> str:
    """A refusal for a person, from the error's reason code and statuses (never its text)."""
    current, requested = status_label(error.current), status_label(error.requested)
    if error.reason == Refusal.ALREADY:
        return f"already {requested}"
    if error.reason == Refusal.ONE_OPEN_PER_FAULT:
        return "the fault already has another open incident"
    if error.reason == Refusal.CLOSED:
        return "closed (reopen it first)"
    if error.reason == Refusal.NOT_CLOSED:
        return "not closed"
    return f"{current} → {requested} is not allowed by the lifecycle"


def locked_incident(pk: Any) -> Incident | None:
    """The incident row, locked until the surrounding transaction ends (None if it is gone).

    Outside a transaction (a form used on its own) the row is read without a lock.
    """
    using = router.db_for_write(Incident)
    queryset = Incident.objects.using(using).filter(pk=pk)
    if transaction.get_connection(using).in_atomic_block:
        queryset = queryset.select_for_update()
    return queryset.first()


class IncidentStatusForm(forms.ModelForm):
    """Status, exit code and failure reason of one incident.

    `clean()` checks the requested move against the locked row, so the store's save cannot be
    refused by the lifecycle afterwards: an illegal move is a form error naming both statuses.
    `loaded_status` carries the status the page showed, so a status the user left alone is never
    "moved" back when a worker changed the row meanwhile; a real edit of a row that moved on is a
    conflict error instead.
    """

    loaded_status = forms.ChoiceField(choices=Status.choices, widget=forms.HiddenInput)

    class Meta:
        model = Incident
        fields = ["status", "exit_code", "failure_reason"]
        widgets = {"failure_reason": forms.Textarea(attrs={"rows": 3, "cols": 80})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current: Incident | None = None
        self.requested_status: str | None = None
        self.history_message = ""  # what save_model changed, for the history entry
        if self.instance.pk:
            self.fields["loaded_status"].initial = self.instance.status
        if self.instance.pk and "status" in self.fields:
            self.fields["status"].help_text = (
                f"From {status_label(self.instance.status)} the lifecycle allows: "
                f"{allowed_moves_text(self.instance)}. Moving to a finished status records "
                "the exit code and failure reason below."
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        self.current = locked = locked_incident(self.instance.pk)
        if locked is None:
            raise forms.ValidationError("This incident no longer exists.")
        submitted = cleaned.get("status")
        loaded = cleaned.get("loaded_status")
        if submitted is None or loaded is None:
            return cleaned
        current = locked.status
        if submitted != loaded and loaded != current:
            self.add_error(
                "status",
                f"This incident moved from {status_label(loaded)} to {status_label(current)} "
                "while you were editing; reload the page and try again.",
            )
        elif submitted != loaded:
            self._check_move(locked, submitted)
        self._check_outcome_edit(self.requested_status or current)
        return cleaned

    def _check_move(self, locked: Incident, target: str) -> None:
        """Ask the store whether the locked row may move to `target`; its refusal, if any, is
        the form's error."""
        current = locked.status
        try:
            DjangoStateStore().check_transition(locked, target)
        except InvalidTransition as error:
            if error.reason == Refusal.ONE_OPEN_PER_FAULT:
                self.add_error("status", f"Cannot move to {status_label(target)}: {error.why}.")
            else:
                self.add_error(
                    "status",
                    f"An incident cannot move from {status_label(current)} to "
                    f"{status_label(target)}; from {status_label(current)} the lifecycle "
                    f"allows: {allowed_moves_text(locked)}.",
                )
            return
        self.requested_status = target

    def _check_outcome_edit(self, resulting_status: str) -> None:
        """Exit code and failure reason belong to a finished attempt; refuse them on open ones."""
        if resulting_status in TERMINAL_STATUSES:
            return
        for name in OUTCOME_FIELDS:
            if name in self.changed_data:
                self.add_error(
                    name,
                    f"An incident that is {status_label(resulting_status)} has no outcome yet; "
                    "set a finished status (resolved, failed, agent failed) to record one.",
                )


class ExecutionInline(ReadOnlyInline):
    model = AgentExecution
    fields = ("started_at", "completed_at", "exit_code", "error_summary", "log_paths")
    readonly_fields = fields
    verbose_name_plural = "agent executions (newest first)"

    @admin.display(description="error message")
    def error_summary(self, execution: AgentExecution) -> str:
        text = execution.error_message
        return text if len(text) <= 200 else text[:199] + "…"


class ReportInline(ReadOnlyInline):
    model = TriageReport
    fields = ("generated_at", "execution_ref", "rendered")
    readonly_fields = fields
    verbose_name_plural = "triage reports (newest first)"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The list needs neither text; a report can be hundreds of kilobytes.
        return super().get_queryset(request).defer("report_markdown", "report_html")

    @admin.display(description="execution")
    def execution_ref(self, report: TriageReport) -> str:
        url = reverse("admin:incidents_agentexecution_change", args=[report.execution_id])
        return format_html('<a href="{}">{}</a>', url, str(report.execution_id)[:8])

    @admin.display(description="report")
    def rendered(self, report: TriageReport) -> str:
        return public_report_link(report.report_id)


def _summarize(verb: str, changed: int, refused: Counter[str]) -> tuple[str, int]:
    noun = "incident" if changed == 1 else "incidents"
    text = f"{verb} {changed} {noun}"
    if refused:
        reasons = "; ".join(f"{count} × {reason}" for reason, count in refused.most_common())
        text += f"; refused {sum(refused.values())} ({reasons})"
    level = messages.SUCCESS
    if refused:
        level = messages.WARNING if changed else messages.ERROR
    return text + ".", level


@admin.register(Incident)
class IncidentAdmin(ResourceSearchMixin, StoreBackedAdmin):
    form = IncidentStatusForm
    list_display = (
        "short_id",
        "status",
        "severity",
        "cluster",
        "resource",
        "fault_type",
        "created_at",
        "completed_at",
    )
    list_filter = (
        "status",
        "severity",
        ("cluster", IndexedValuesListFilter),
        ("fault_type", IndexedValuesListFilter),
        ("resource_kind", IndexedValuesListFilter),
        ("resource_namespace", IndexedValuesListFilter),
    )
    uuid_search_fields = ("incident_id",)
    exact_search_fields = ("fault_id",)
    search_help_text = (
        "Part of a resource name; a whole namespace, resource uid, incident id or fault id."
    )
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    # The fault's fields are copied onto each incident precisely so lists need no join.
    list_select_related = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: seconds on 1 M rows
    list_per_page = 50
    actions = (
        "requeue_for_triage",
        "mark_resolved",
        "mark_failed",
        "acknowledge",
        "close_fixed",
        "close_false_positive",
        "reopen",
    )
    inlines = (ExecutionInline, ReportInline)
    readonly_fields = (
        "incident_id",
        "fault_link",
        "created_at",
        "started_at",
        "completed_at",
        *(name for name in DENORMALIZED_FIELDS if name != "context"),
        "context_pretty",
    )
    fieldsets = (
        (
            "Lifecycle",
            {
                "fields": (
                    "incident_id",
                    "status",
                    "exit_code",
                    "failure_reason",
                    ("created_at", "started_at", "completed_at"),
                )
            },
        ),
        (
            "Fault (read-only here: correct it on the fault event, and every incident follows)",
            {
                "fields": (
                    "fault_link",
                    ("fault_type", "severity"),
                    ("cluster", "subscription_id"),
                    ("resource_kind", "resource_api_version"),
                    ("resource_namespace", "resource_name", "resource_uid"),
                    "timestamp",
                    "context_pretty",
                )
            },
        ),
    )

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[IndexedDatesChangeList]:
        return IndexedDatesChangeList  # the date hierarchy probes incidents_created_idx

    def get_fieldsets(self, request: HttpRequest, obj: Incident | None = None):
        fieldsets = super().get_fieldsets(request, obj)
        if not self.has_change_permission(request, obj):
            return fieldsets  # read-only page: no form, so no hidden field to carry
        (title, options), *rest = fieldsets
        return ((title, {**options, "fields": ("loaded_status", *options["fields"])}), *rest)

    # -- permissions: incidents are made by ingestion and kept as history ---------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Incident | None = None) -> bool:
        return False

    # -- columns and read-only fields ------------------------------------------------------------
    @admin.display(description="incident", ordering="incident_id")
    def short_id(self, incident: Incident) -> str:
        return str(incident.incident_id)[:8]

    @admin.display(description="resource", ordering="resource_name")
    def resource(self, incident: Incident) -> str:
        return incident.resource_label

    @admin.display(description="fault event")
    def fault_link(self, incident: Incident) -> str:
        url = reverse("admin:incidents_faultevent_change", args=[incident.fault_id])
        return format_html('<a href="{}">{}</a>', url, incident.fault_id)

    @admin.display(description="context")
    def context_pretty(self, incident: Incident) -> str:
        return pretty_context(incident.context)

    # -- saving: through the store ---------------------------------------------------------------
    def save_model(
        self, request: HttpRequest, obj: Incident, form: IncidentStatusForm, change: bool
    ) -> None:
        """Apply the validated edit with one store call; never `obj.save()`.

        Runs inside the change form's transaction, after `form.clean()` locked the row, so the
        store sees the status the form validated against.
        """
        current = form.current
        if current is None:  # clean() refuses the form then
            raise RuntimeError(f"incident {obj.pk}: saved without the row clean() locked")
        data = form.cleaned_data
        target = form.requested_status
        store = DjangoStateStore()
        by = request.user
        if target is not None:
            if target in TERMINAL_STATUSES:
                result = store.complete_incident(
                    obj.pk, data["exit_code"], data["failure_reason"] or "", status=target, by=by
                )
            else:
                result = store.update_incident_status(obj.pk, target, by=by)
        elif any(name in form.changed_data for name in OUTCOME_FIELDS):
            result = store.correct_incident_outcome(
                obj.pk, exit_code=data["exit_code"], failure_reason=data["failure_reason"], by=by
            )
        else:
            result = current
        changes = describe_changes(
            lifecycle_snapshot(current), lifecycle_snapshot(result), LIFECYCLE_FIELDS
        )
        form.history_message = "; ".join(changes)
        # The form wrote its values onto obj; show what the store actually stored.
        for name in LIFECYCLE_FIELDS:
            setattr(obj, name, getattr(result, name))

    # -- actions: one store call per row, each in its own transaction ----------------------------
    def _apply_to_each(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        *,
        action: str,
        verb: str,
        target: str | None,
        move: Callable[[DjangoStateStore, Incident], Incident],
    ) -> None:
        """Apply `move` (one store call) to every selected incident; report changed and refused,
        the refusals grouped by the store's reason code.

        Each row is locked, moved and logged in one transaction, so its LogEntry commits with the
        change or not at all, and one refused row never undoes another. `target` is the triage
        status the move sets (None for on-call moves): already there is a refusal, not a no-op.
        """
        store = DjangoStateStore()
        changed = 0
        refused: Counter[str] = Counter()
        for pk in queryset.order_by("created_at").values_list("pk", flat=True):
            with transaction.atomic(using=store.using):
                current = locked_incident(pk)
                if current is None:
                    continue
                if target is not None and current.status == target:
                    refused[f"already {status_label(target)}"] += 1
                    continue
                try:
                    with transaction.atomic(using=store.using):
                        result = move(store, current)
                except InvalidTransition as error:
                    refused[refusal_text(error)] += 1
                    continue
                except StoreError as error:
                    refused[type(error).__name__] += 1
                    continue
                changes = describe_changes(
                    snapshot(current), snapshot(result), LIFECYCLE_FIELDS + ONCALL_FIELDS
                )
                self.log_change(request, result, f"{'; '.join(changes)} (action: {action})")
                changed += 1
        text, level = _summarize(verb, changed, refused)
        self.message_user(request, text, level)

    @admin.action(description="Requeue for triage", permissions=["change"])
    def requeue_for_triage(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply_to_each(
            request,
            queryset,
            action="requeue",
            verb="Requeued",
            target=Status.PENDING,
            move=lambda store, incident: store.update_incident_status(
                incident.pk, Status.PENDING, by=request.user
            ),
        )

    @admin.action(description="Mark resolved", permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply_to_each(
            request,
            queryset,
            action="mark resolved",
            verb="Resolved",
            target=Status.RESOLVED,
            move=lambda store, incident: store.complete_incident(
                incident.pk, incident.exit_code, status=Status.RESOLVED, by=request.user
            ),
        )

    @admin.action(description="Mark failed", permissions=["change"])
    def mark_failed(self, request: HttpRequest, queryset: QuerySet) -> None:
        reason = f"marked failed in the admin by {request.user.get_username()}"
        self._apply_to_each(
            request,
            queryset,
            action="mark failed",
            verb="Failed",
            target=Status.FAILED,
            move=lambda store, incident: store.complete_incident(
                incident.pk, incident.exit_code, reason, status=Status.FAILED, by=request.user
            ),
        )

    # -- on-call actions: the same store methods as the dashboard's buttons -----------------------
    def has_respond_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("incidents.respond_incident")

    @admin.action(description="Acknowledge (on call)", permissions=["respond"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply_to_each(
            request, queryset, action="acknowledge", verb="Acknowledged", target=None,
            move=lambda store, incident: store.acknowledge_incident(incident.pk, by=request.user),
        )  # fmt: skip

    @admin.action(description="Close as fixed (on call)", permissions=["respond"])
    def close_fixed(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._close(request, queryset, Resolution.FIXED)

    @admin.action(description="Close as false positive (on call)", permissions=["respond"])
    def close_false_positive(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._close(request, queryset, Resolution.FALSE_POSITIVE)

    def _close(self, request: HttpRequest, queryset: QuerySet, resolution: str) -> None:
        self._apply_to_each(
            request, queryset, action=f"close as {resolution}", verb="Closed", target=None,
            move=lambda store, incident: store.close_incident(
                incident.pk, by=request.user, resolution=resolution, note="closed in the admin"
            ),
        )  # fmt: skip

    @admin.action(description="Reopen (on call)", permissions=["respond"])
    def reopen(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply_to_each(
            request, queryset, action="reopen", verb="Reopened", target=None,
            move=lambda store, incident: store.reopen_incident(incident.pk, by=request.user),
        )  # fmt: skip
