"""Re-running triage with an agent profile, from the incident page (a POST through the store).

Who may: responders (`incidents.respond_incident`, the responder group's) and staff,
since re-running spends money (see the daily budget) and replaces nothing: the new run's report
appears beside the earlier ones.
"""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import UserPassesTestMixin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views import View

from incidents.models import Incident
from incidents.profiles import agent_profiles
from incidents.roles import RESPOND, VIEW_INCIDENTS
from incidents.store import DjangoStateStore, StoreError


def can_rerun(user) -> bool:
    """Responders and staff who may see incidents (superusers have every permission)."""
    if not (user.is_authenticated and user.has_perm(VIEW_INCIDENTS)):
        return False
    return user.is_staff or user.has_perm(RESPOND)


class RerunForm(forms.Form):
    """The profile to run: "" is the default agent (TRIAGE_AGENT_COMMAND)."""

    profile = forms.ChoiceField(required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "default agent")]
        choices += [(name, name) for name in sorted(agent_profiles())]
        cast(forms.ChoiceField, self.fields["profile"]).choices = choices


class IncidentRerunView(UserPassesTestMixin, View):
    """POST: requeue the incident for a run with the chosen profile; back to its page."""

    http_method_names = ["post"]

    def test_func(self) -> bool:
        return can_rerun(self.request.user)

    def post(self, request: HttpRequest, incident_id) -> HttpResponse:
        incident = get_object_or_404(Incident.objects.only("pk"), pk=incident_id)
        url = reverse("incidents:detail", args=[incident.pk]) + "#executions-title"
        form = RerunForm(request.POST)
        if not form.is_valid():
            errors = "; ".join(str(error) for errs in form.errors.values() for error in errs)
            messages.error(request, f"Re-run not queued: {errors}")
            return HttpResponseRedirect(url, status=303)
        profile = form.cleaned_data["profile"]
        try:
            DjangoStateStore().request_rerun(incident.pk, by=request.user, profile=profile)
        except StoreError as error:
            messages.error(request, f"Re-run not queued: {error}")
        else:
            messages.success(
                request,
                f"Re-run queued with {profile or 'the default agent'}: a worker picks it up next.",
            )
        return HttpResponseRedirect(url, status=303)
