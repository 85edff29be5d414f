"""The on-call shapes of the API: the timeline, silences, and the bodies of the on-call POSTs.

Request serializers only check shapes (types, lengths the form would refuse); the rules (who,
which state, which resolution, a silence's fields) are the store's, and its errors are answered
by `incidents.api.oncall`.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.choices import ActivityKind, ActorKind, Resolution
from incidents.models import IncidentActivity, Silence
from incidents.oncall import NOTE_MAX


class UsernameField(serializers.CharField):
    """A user as its username (None for nobody)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def to_representation(self, user) -> str | None:  # type: ignore[override]  # null allowed
        return user.get_username() if user is not None else None

    def get_attribute(self, instance):
        # A null foreign key must reach to_representation as None, not be skipped by DRF.
        return getattr(instance, self.source_attrs[0])


class ActivitySerializer(serializers.ModelSerializer):
    """One timeline row: what happened, who did it (a person, or the worker or ingestion)."""

    kind = serializers.ChoiceField(choices=ActivityKind.choices, read_only=True)
    actor = UsernameField()
    actor_kind = serializers.ChoiceField(choices=ActorKind.choices, read_only=True)

    class Meta:
        model = IncidentActivity
        fields = ("at", "kind", "actor", "actor_kind", "from_value", "to_value", "text")


class SilenceSerializer(serializers.ModelSerializer):
    """A silence: what it matches (empty: any), its window, its author, and whether it is on."""

    created_by = UsernameField()
    expired_by = UsernameField()
    active = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = (
            "id",
            *Silence.MATCH_FIELDS,
            "comment",
            "created_by",
            "created_at",
            "starts_at",
            "ends_at",
            "expired_at",
            "expired_by",
            "matched",
            "last_matched_at",
            "active",
        )

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_active(self, silence: Silence) -> bool:
        return silence.is_active()


class SilenceListSerializer(serializers.Serializer):
    results = SilenceSerializer(many=True)


# --- request bodies -------------------------------------------------------------------------


class AssignBody(serializers.Serializer):
    assignee = serializers.CharField(
        allow_null=True, max_length=150, help_text="A responder's username; null unassigns."
    )


class NoteBody(serializers.Serializer):
    text = serializers.CharField(max_length=NOTE_MAX)


class CloseBody(serializers.Serializer):
    resolution = serializers.ChoiceField(choices=Resolution.choices)
    note = serializers.CharField(max_length=NOTE_MAX, required=False, allow_blank=True, default="")


class ReopenBody(serializers.Serializer):
    note = serializers.CharField(max_length=NOTE_MAX, required=False, allow_blank=True, default="")


class SilenceBody(serializers.Serializer):
    """A new silence: until `ends_at` (with a time zone), matching every field given (exact,
    or a prefix ending in `*`); at least one field."""

    ends_at = serializers.DateTimeField()
    comment = serializers.CharField(max_length=NOTE_MAX)
    cluster = serializers.CharField(max_length=255, required=False, allow_blank=True)
    namespace = serializers.CharField(max_length=255, required=False, allow_blank=True)
    resource_kind = serializers.CharField(max_length=255, required=False, allow_blank=True)
    fault_type = serializers.CharField(max_length=255, required=False, allow_blank=True)
    resource_name = serializers.CharField(max_length=255, required=False, allow_blank=True)


class RefusalSerializer(serializers.Serializer):
    """The store refused the move: a sentence and the machine-readable reason (`Refusal`)."""

    detail = serializers.CharField()
    reason = serializers.CharField()
