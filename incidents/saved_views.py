"""Saved views: a user's named list queries ("my clusters"), kept server-side.

A saved view is the list's query string and nothing else, so it opens as a plain link and can be
shared. Page positions (`after`, `before`, `last`) are dropped when saving: a view is a filter and
an order, not a place in yesterday's list. Saving a name the user already has replaces its query.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from incidents.models import SavedView
from incidents.roles import VIEW_INCIDENTS

MAX_SAVED_VIEWS = 50  # per user: a menu, not a database
POSITION_PARAMETERS = frozenset({"after", "before", "last"})


def clean_query(query: str) -> str:
    """`query` (with or without "?") without page positions, empty values or a CSRF token."""
    pairs = [
        (name, value)
        for name, value in parse_qsl(query.lstrip("?"), keep_blank_values=False)
        if name not in POSITION_PARAMETERS and name != "csrfmiddlewaretoken"
    ]
    return urlencode(pairs)


def user_views(user) -> list[SavedView]:
    return list(SavedView.objects.filter(user=user).order_by("name"))


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=80, strip=True)
    query = forms.CharField(max_length=2000, required=False, strip=True)

    def clean_query(self) -> str:
        return clean_query(self.cleaned_data["query"])


@transaction.atomic
def save_view(*, user, name: str, query: str) -> SavedView:
    """Create the user's view `name`, or replace its query. Raises ValueError past the limit."""
    existing = SavedView.objects.select_for_update().filter(user=user, name=name).first()
    if existing is not None:
        existing.query = query
        existing.save(update_fields=["query"])
        return existing
    if SavedView.objects.filter(user=user).count() >= MAX_SAVED_VIEWS:
        raise ValueError(f"At most {MAX_SAVED_VIEWS} saved views: delete one first.")
    return SavedView.objects.create(user=user, name=name, query=query)


class SavedViewListView(PermissionRequiredMixin, TemplateView):
    """GET: the user's saved views, as links (a page of its own: the list stays in its query
    budget)."""

    permission_required = VIEW_INCIDENTS
    template_name = "incidents/saved_views.html"

    def get_context_data(self, **kwargs) -> dict:
        return super().get_context_data(saved_views=user_views(self.request.user), **kwargs)


class SavedViewCreateView(PermissionRequiredMixin, View):
    """POST name and query: save the current list as a view, then show it."""

    permission_required = VIEW_INCIDENTS
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = SavedViewForm(request.POST)
        if not form.is_valid():
            errors = "; ".join(
                f"{name}: {' '.join(str(error) for error in field_errors)}"
                for name, field_errors in form.errors.items()
            )
            messages.error(request, f"The view was not saved ({errors}).")
            return HttpResponseRedirect(reverse("incidents:list"))
        try:
            view = save_view(user=request.user, **form.cleaned_data)
        except ValueError as error:
            messages.error(request, str(error))
            return HttpResponseRedirect(reverse("incidents:list"))
        messages.success(request, f"Saved view “{view.name}”.")
        return HttpResponseRedirect(view.get_absolute_url())


class SavedViewDeleteView(PermissionRequiredMixin, View):
    """POST: delete one of the user's own views (another user's is a 404)."""

    permission_required = VIEW_INCIDENTS
    http_method_names = ["post"]

    def post(self, request: HttpRequest, view_id: int) -> HttpResponse:
        view = get_object_or_404(SavedView, pk=view_id, user=request.user)
        view.delete()
        messages.success(request, f"Deleted view “{view.name}”.")
        return HttpResponseRedirect(reverse("incidents:list"))
