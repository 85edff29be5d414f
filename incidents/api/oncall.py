"""The on-call loop over the API: acknowledge, assign, note, close, reopen; silences.

Each POST is one store call (`DjangoStateStore`, one transaction), with the dashboard's
permission (`incidents.respond_incident`: a viewer's token gets 403). The store's refusals are
answered as the dashboard words them: 409 for a move the state forbids (InvalidTransition or an
ended silence, with the machine-readable `reason`), 400 for an invalid record (`errors` by
field), 404 for no such incident or silence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers as drf
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import selectors
from incidents.api import oncall_serializers as shapes
from incidents.api import serializers
from incidents.api.detail import detail_queryset
from incidents.api.permissions import CanRespond, CanViewSilences
from incidents.errors import (
    IncidentNotFound,
    InvalidRecord,
    InvalidTransition,
    Refusal,
    SilenceNotActive,
    SilenceNotFound,
    StoreError,
)
from incidents.models import Incident
from incidents.roles import responders
from incidents.store import DjangoStateStore

_ERRORS = {
    400: OpenApiResponse(serializers.ErrorSerializer, description="Invalid body, by field"),
    401: OpenApiResponse(serializers.ErrorSerializer, description="No token, or not a valid one"),
    403: OpenApiResponse(serializers.ErrorSerializer, description="The token's user may not"),
    404: OpenApiResponse(serializers.ErrorSerializer, description="No such record"),
    409: OpenApiResponse(shapes.RefusalSerializer, description="The state forbids it"),
    429: OpenApiResponse(serializers.ErrorSerializer, description="Too many requests"),
}


def refusal_response(error: StoreError) -> Response:
    """The answer to a store error: 404, 409 with its reason, or 400 naming the fields."""
    if isinstance(error, IncidentNotFound | SilenceNotFound):
        return Response({"detail": str(error)}, status=404)
    if isinstance(error, InvalidTransition):
        return Response({"detail": str(error), "reason": str(error.reason)}, status=409)
    if isinstance(error, SilenceNotActive):
        return Response({"detail": str(error), "reason": str(Refusal.EXPIRED)}, status=409)
    if isinstance(error, InvalidRecord):
        return Response({"detail": str(error), "errors": error.errors}, status=400)
    raise error  # a store error this API does not know: a bug to see, not to hide


def _invalid_body(errors: dict) -> Response:
    messages = {
        name: [str(message) for message in (items if isinstance(items, list) else [items])]
        for name, items in errors.items()
    }
    return Response({"detail": "Invalid body.", "errors": messages}, status=400)


def _assignee(username: str | None) -> Any:
    """The responder named `username` (None for nobody); InvalidRecord naming `assignee`."""
    if username is None:
        return None
    user = responders().filter(**{get_user_model().USERNAME_FIELD: username}).first()
    if user is None:
        raise InvalidRecord("assignment", {"assignee": [f"{username!r} is not a responder"]})
    return user


_SILENCE_ID = re.compile(r"[0-9]{1,18}")

Action = Callable[[DjangoStateStore, str, dict, Any], Incident]


class IncidentActionView(APIView):
    """POST one on-call action on an incident; the answer is the incident as GET shows it."""

    permission_classes = [CanRespond]
    body: type[drf.Serializer] | None = None
    store_call: Action

    def post(self, request: Request, incident_id: str) -> Response:
        data: dict = {}
        if self.body is not None:
            body = self.body(data=request.data)
            if not body.is_valid():
                return _invalid_body(body.errors)
            data = body.validated_data
        try:
            done = type(self).store_call(DjangoStateStore(), incident_id, data, request.user)
        except StoreError as error:
            return refusal_response(error)
        incident = detail_queryset().get(pk=done.pk)
        context = {"request": request}
        return Response(serializers.IncidentDetailSerializer(incident, context=context).data)


def _action_view(
    name: str, action: Action, body: type[drf.Serializer] | None, summary: str
) -> type[IncidentActionView]:
    """An IncidentActionView for one store method, with its schema."""

    # A function of its own: extend_schema annotates the function it decorates.
    def post(self, request: Request, incident_id: str) -> Response:
        return IncidentActionView.post(self, request, incident_id)

    post = extend_schema(
        operation_id=f"incidents_{name}",
        summary=summary,
        request=body,
        responses={200: serializers.IncidentDetailSerializer, **_ERRORS},
    )(post)
    members = {"body": body, "post": post, "store_call": staticmethod(action)}
    return type(f"{name.title()}View", (IncidentActionView,), members)


AcknowledgeView = _action_view(
    "acknowledge",
    lambda store, pk, data, user: store.acknowledge_incident(pk, by=user),
    None,
    "Acknowledge: open -> acknowledged, by the token's user",
)
AssignView = _action_view(
    "assign",
    lambda store, pk, data, user: store.assign_incident(
        pk, assignee=_assignee(data["assignee"]), by=user
    ),
    shapes.AssignBody,
    "Assign to a responder (null unassigns)",
)
NoteView = _action_view(
    "notes",
    lambda store, pk, data, user: store.add_incident_note(pk, text=data["text"], by=user),
    shapes.NoteBody,
    "Add a note to the timeline",
)
CloseView = _action_view(
    "close",
    lambda store, pk, data, user: store.close_incident(
        pk, by=user, resolution=data["resolution"], note=data["note"]
    ),
    shapes.CloseBody,
    "Close with a resolution (the triage status is left as it is)",
)
ReopenView = _action_view(
    "reopen",
    lambda store, pk, data, user: store.reopen_incident(pk, by=user, note=data["note"]),
    shapes.ReopenBody,
    "Reopen a closed incident",
)


# --- silences -------------------------------------------------------------------------------


class SilenceListView(APIView):
    """GET: silences (active ones by default, ending soonest first; `active=false`: ended
    ones, latest first; at most SILENCE_LIMIT). POST: a new silence (responders)."""

    def get_permissions(self):
        return [CanRespond() if self.request.method == "POST" else CanViewSilences()]

    @extend_schema(
        operation_id="silences_list",
        parameters=[
            OpenApiParameter("active", bool, description="Active silences (default) or ended ones.")
        ],
        responses={200: shapes.SilenceListSerializer, **_ERRORS},
    )
    def get(self, request: Request) -> Response:
        active = request.query_params.get("active", "true").lower()
        if active not in ("true", "false"):
            return _invalid_body({"active": ["must be true or false"]})
        rows = selectors.silences(active=active == "true")
        return Response({"results": shapes.SilenceSerializer(rows, many=True).data})

    @extend_schema(
        operation_id="silences_create",
        request=shapes.SilenceBody,
        responses={201: shapes.SilenceSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = shapes.SilenceBody(data=request.data)
        if not body.is_valid():
            return _invalid_body(body.errors)
        data = dict(body.validated_data)
        try:
            silence = DjangoStateStore().create_silence(
                by=request.user, ends_at=data.pop("ends_at"), comment=data.pop("comment"), **data
            )
        except StoreError as error:
            return refusal_response(error)
        return Response(shapes.SilenceSerializer(silence).data, status=201)


class ExpireSilenceView(APIView):
    """POST: end an active silence now."""

    permission_classes = [CanRespond]

    @extend_schema(
        operation_id="silences_expire",
        request=None,
        responses={200: shapes.SilenceSerializer, **_ERRORS},
    )
    def post(self, request: Request, silence_id: str) -> Response:
        if not _SILENCE_ID.fullmatch(silence_id):  # a bigint at most: no database error
            return refusal_response(SilenceNotFound(silence_id))
        try:
            silence = DjangoStateStore().expire_silence(silence_id, by=request.user)
        except StoreError as error:
            return refusal_response(error)
        return Response(shapes.SilenceSerializer(silence).data)
