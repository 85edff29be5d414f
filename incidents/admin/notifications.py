"""Notification channels (credentials masked, kept when left blank) and the outbox (retry).

A channel's URL and secret are write-only here: the form never renders them back (password
inputs without their value), lists show them masked, and history messages name the fields
changed, never their values.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db.models import QuerySet
from django.http import HttpRequest

from incidents.admin.common import admin_change_link
from incidents.models import Notification, NotificationChannel
from incidents.notifications.channels import mask_secret, mask_url
from incidents.notifications.kinds import ChannelKind, EventKind
from incidents.notifications.outbox import retry_now

ERROR_PREVIEW_CHARS = 120


class ChannelForm(forms.ModelForm):
    url = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The webhook URL (a secret: it is not shown again once saved).",
    )
    secret = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Webhooks only: the HMAC-SHA256 key receivers verify signatures with.",
    )
    clusters = forms.CharField(
        required=False, help_text="Comma-separated cluster names; empty: every cluster."
    )
    events = forms.MultipleChoiceField(
        choices=EventKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.",
    )

    class Meta:
        model = NotificationChannel
        fields = [
            "name", "kind", "url", "secret", "min_severity", "clusters", "events", "enabled",
            "skip_unchanged_reports",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            saved = mask_url(self.instance.url)
            self.fields["url"].help_text = f"Saved: {saved}. Leave empty to keep it."
            self.fields[
                "secret"
            ].help_text = f"Saved: {mask_secret(self.instance.secret)}. Leave empty to keep it."
            self.initial["clusters"] = ", ".join(self.instance.clusters)

    def clean_url(self) -> str:
        value = self.cleaned_data["url"].strip()
        if not value:
            if self.instance.pk:
                return self.instance.url
            raise ValidationError("A channel needs a URL.")
        URLValidator(schemes=["http", "https"], message="Enter an http:// or https:// URL.")(value)
        return value

    def clean_secret(self) -> str:
        value = self.cleaned_data["secret"].strip()
        return value or (self.instance.secret if self.instance.pk else "")

    def clean_clusters(self) -> list[str]:
        return sorted({name.strip() for name in self.cleaned_data["clusters"].split(",") if name})

    def clean_events(self) -> list[str]:
        return [event for event in EventKind.values if event in self.cleaned_data["events"]]

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data
        if data.get("kind") == ChannelKind.WEBHOOK and not data.get("secret"):
            self.add_error("secret", "A webhook needs a secret to sign with.")
        return data


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = (
        "name",
        "kind",
        "masked_url",
        "secret_state",
        "min_severity",
        "cluster_list",
        "event_list",
        "enabled",
    )
    list_filter = ("kind", "enabled")
    search_fields = ("name",)

    @admin.display(description="URL")
    def masked_url(self, channel: NotificationChannel) -> str:
        return mask_url(channel.url)

    @admin.display(description="secret")
    def secret_state(self, channel: NotificationChannel) -> str:
        return mask_secret(channel.secret)

    @admin.display(description="clusters")
    def cluster_list(self, channel: NotificationChannel) -> str:
        return ", ".join(channel.clusters) or "all"

    @admin.display(description="events")
    def event_list(self, channel: NotificationChannel) -> str:
        return ", ".join(channel.events) or "all"


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The outbox, read-only: what was sent where, and why a notification failed."""

    list_display = (
        "created_at",
        "event",
        "channel",
        "incident_ref",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "error_preview",
    )
    list_filter = ("status", "event", "channel")
    list_select_related = ("channel",)
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["retry_selected"]
    readonly_fields = (
        "notification_id",
        "channel",
        "event",
        "incident_ref",
        "detail",
        "dedup_key",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "last_attempt_at",
        "locked_until",
        "locked_by",
        "last_status_code",
        "last_error",
        "delivered_at",
    )
    exclude = ("incident",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="incident")
    def incident_ref(self, notification: Notification) -> str:
        if notification.incident_id is None:
            return "—"
        return admin_change_link(notification.incident, str(notification.incident_id)[:8])

    @admin.display(description="last error")
    def error_preview(self, notification: Notification) -> str:
        text = notification.last_error
        return text if len(text) <= ERROR_PREVIEW_CHARS else text[: ERROR_PREVIEW_CHARS - 1] + "…"

    @admin.action(description="Retry now (a fresh set of attempts)", permissions=["change"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = retry_now(queryset.values_list("pk", flat=True))
        skipped = queryset.count() - count
        self.message_user(
            request,
            f"{count} notification(s) queued for delivery"
            + (f"; {skipped} skipped (delivered, or being sent right now)" if skipped else "."),
            messages.SUCCESS if count else messages.WARNING,
        )
