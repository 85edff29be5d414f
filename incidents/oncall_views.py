"""The on-call actions on the dashboard: POST forms (CSRF, no JavaScript needed) that call the
store and redirect back to where the person was (the same filtered list, or the incident page),
and the silences page.

Acting needs the responder's permission (`roles.RESPOND`); pages offer the forms only to those
who have it, so a viewer sees no buttons rather than a 403 after a click. The store's refusals
(typed errors) become messages on the page the person returns to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView

from incidents import selectors
from incidents.choices import OnCallState, Resolution
from incidents.models import Incident
from incidents.oncall_forms import (
    AssignForm,
    BulkActionForm,
    CloseForm,
    NoteForm,
    PlainForm,
    ReopenForm,
    SilenceForm,
)
from incidents.roles import RESPOND, VIEW_SILENCES, responders
from incidents.store import (
    DjangoStateStore,
    IncidentNotFound,
    InvalidTransition,
    Refusal,
    SilenceNotFound,
    StoreError,
)


def whole_history_query() -> str:
    """The list's query for every incident, whatever its on-call state."""
    return "?" + urlencode([("oncall", state) for state in OnCallState.values])


def _back(request: HttpRequest, fallback: str) -> str:
    """The posted `next` when it is a path on this site, else `fallback`."""
    target = request.POST.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _form_errors(form: forms.Form) -> str:
    return " ".join(
        f"{'' if name == '__all__' else name + ': '}{' '.join(str(e) for e in errors)}"
        for name, errors in form.errors.items()
    )


def _refusal(error: StoreError) -> str:
    if isinstance(error, InvalidTransition):
        return error.why
    return str(error)


# --- one incident -----------------------------------------------------------------------------

Action = Callable[[DjangoStateStore, Any, dict, Any], str]


def _acknowledge(store, pk, data, user) -> str:
    store.acknowledge_incident(pk, by=user)
    return "Acknowledged."


def _assign(store, pk, data, user) -> str:
    assignee = data["assignee"]
    store.assign_incident(pk, assignee=assignee, by=user)
    return f"Assigned to {assignee.get_username()}." if assignee else "Unassigned."


def _assign_me(store, pk, data, user) -> str:
    store.assign_incident(pk, assignee=user, by=user)
    return "Assigned to you."


def _note(store, pk, data, user) -> str:
    store.add_incident_note(pk, text=data["text"], by=user)
    return "Note added."


def _close(store, pk, data, user) -> str:
    store.close_incident(pk, by=user, resolution=data["resolution"], note=data.get("note", ""))
    return f"Closed as {Resolution(data['resolution']).label.lower()}."


def _reopen(store, pk, data, user) -> str:
    store.reopen_incident(pk, by=user, note=data["note"])
    return "Reopened."


ACTIONS: dict[str, tuple[type[forms.Form], Action]] = {
    "acknowledge": (PlainForm, _acknowledge),
    "assign": (AssignForm, _assign),
    "assign-me": (PlainForm, _assign_me),
    "note": (NoteForm, _note),
    "close": (CloseForm, _close),
    "reopen": (ReopenForm, _reopen),
}


class IncidentActionView(PermissionRequiredMixin, View):
    """POST /incidents/<id>/<action>/: one store call, then back to `next` with a message."""

    permission_required = RESPOND
    http_method_names = ["post"]

    def post(self, request: HttpRequest, incident_id, action: str) -> HttpResponse:
        if action not in ACTIONS:
            raise Http404("no such action")
        form_class, run = ACTIONS[action]
        form = form_class(request.POST)
        back = _back(request, reverse("incidents:detail", args=[incident_id]))
        if not form.is_valid():
            messages.error(request, f"Nothing changed: {_form_errors(form)}")
            return HttpResponseRedirect(back)
        try:
            done = run(DjangoStateStore(), incident_id, form.cleaned_data, request.user)
        except IncidentNotFound as error:
            raise Http404(str(error)) from None
        except StoreError as error:
            messages.error(request, f"Nothing changed: {_refusal(error)}.")
        else:
            messages.success(request, done)
        return HttpResponseRedirect(back)


# --- selected rows of the list ----------------------------------------------------------------

REFUSALS = {
    Refusal.ALREADY: "already done",
    Refusal.CLOSED: "closed (reopen it first)",
    Refusal.NOT_CLOSED: "not closed",
}


class BulkActionView(PermissionRequiredMixin, View):
    """POST /incidents/actions/: acknowledge, assign to me or close the selected incidents, one
    store call (one transaction) each; back to the same filtered list with what was done and
    what was refused, grouped by the store's reason."""

    permission_required = RESPOND
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = BulkActionForm(request.POST)
        back = _back(request, reverse("incidents:list"))
        if not form.is_valid():
            messages.error(request, f"Nothing changed: {_form_errors(form)}")
            return HttpResponseRedirect(back)
        data = form.cleaned_data
        action = {"acknowledge": _acknowledge, "assign_me": _assign_me, "close": _close}[
            data["action"]
        ]
        store = DjangoStateStore()
        done = 0
        refused: Counter[str] = Counter()
        for pk in data["incident"]:
            try:
                action(store, pk, data, request.user)
            except IncidentNotFound:
                refused["gone"] += 1
            except InvalidTransition as error:
                refused[REFUSALS.get(error.reason, error.reason.value)] += 1
            except StoreError as error:
                refused[str(error)] += 1
            else:
                done += 1
        label = dict(BulkActionForm.ACTIONS)[data["action"]]
        text = f"{label}: {done} incident{'s' if done != 1 else ''}"
        if refused:
            reasons = "; ".join(f"{n} {reason}" for reason, n in refused.most_common())
            text += f"; {sum(refused.values())} refused ({reasons})"
        (messages.success if done else messages.error)(request, text + ".")
        return HttpResponseRedirect(back)


# --- the incident page's forms ------------------------------------------------------------------


def silence_query(incident: Incident) -> str:
    """The silences page's query that fills in the form with this incident's fault."""
    fields = {
        "cluster": incident.cluster,
        "namespace": incident.resource_namespace,
        "resource_kind": incident.resource_kind,
        "fault_type": incident.fault_type,
        "resource_name": incident.resource_name,
        "next": incident.get_absolute_url(),
    }
    return "?" + urlencode({name: value for name, value in fields.items() if value})


def detail_context(request: HttpRequest, incident: Incident) -> dict:
    """What the incident page needs for its actions (nothing for a viewer: no forms)."""
    if not request.user.has_perm(RESPOND):
        return {"can_respond": False}
    return {
        "can_respond": True,
        "assign_form": AssignForm(initial={"assignee": incident.assignee_id}),
        "assignees": list(responders()),
        "close_form": CloseForm(),
        "note_form": NoteForm(),
        "resolutions": Resolution.choices,
        "silence_url": reverse("incidents:silences") + silence_query(incident),
    }


# --- silences -----------------------------------------------------------------------------------


class SilenceListView(PermissionRequiredMixin, TemplateView):
    """GET /silences/: active and ended silences with their match counts; responders also get
    the form (filled in from the query string: "silence this fault" links here) and the
    buttons that end a silence early. POST creates one."""

    permission_required = VIEW_SILENCES
    template_name = "incidents/silence_list.html"

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        initial = {name: request.GET.get(name, "") for name in SilenceForm.base_fields}
        return self.render_page(SilenceForm(initial={**initial, "hours": 1}))

    def render_page(self, form: SilenceForm, status: int = 200) -> HttpResponse:
        context = self.get_context_data(
            form=form,
            active=selectors.silences(active=True),
            ended=selectors.silences(active=False),
            can_respond=self.request.user.has_perm(RESPOND),
        )
        return self.render_to_response(context, status=status)

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.has_perm(RESPOND):
            return self.handle_no_permission()
        form = SilenceForm(request.POST)
        if not form.is_valid():
            return self.render_page(form, status=400)
        data = form.cleaned_data
        try:
            silence = DjangoStateStore().create_silence(
                by=request.user,
                ends_at=form.ends_at(),
                comment=data["comment"],
                **{name: data[name] or None for name in ("cluster", "namespace",
                   "resource_kind", "fault_type", "resource_name")},
            )  # fmt: skip
        except StoreError as error:
            for name, errors in getattr(error, "errors", {"__all__": [str(error)]}).items():
                form.add_error(name if name in form.fields else None, errors)
            return self.render_page(form, status=400)
        messages.success(
            request, f"Silenced {silence.matcher_text} until {silence.ends_at:%Y-%m-%d %H:%M} UTC."
        )
        return HttpResponseRedirect(_back(request, reverse("incidents:silences")))


class ExpireSilenceView(PermissionRequiredMixin, View):
    """POST /silences/<id>/expire/: end a silence now."""

    permission_required = RESPOND
    http_method_names = ["post"]

    def post(self, request: HttpRequest, silence_id: int) -> HttpResponse:
        try:
            silence = DjangoStateStore().expire_silence(silence_id, by=request.user)
        except SilenceNotFound as error:
            raise Http404(str(error)) from None
        except StoreError as error:
            messages.error(request, f"Nothing changed: {error}.")
        else:
            messages.success(request, f"Silence of {silence.matcher_text} ended.")
        return HttpResponseRedirect(_back(request, reverse("incidents:silences")))
