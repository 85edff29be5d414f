"""Pieces every incidents admin class shares: id-aware search, store-error handling, history text.

The admin never writes incident state itself; these helpers keep the admin classes thin around
`incidents.store.DjangoStateStore`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from incidents.store import StoreError

NONE_SHOWN = "(none)"
# Long values (context JSON, reasons) are cut in history messages; the row keeps them whole.
HISTORY_VALUE_LIMIT = 80


def parse_uuid(text: str) -> uuid.UUID | None:
    """The UUID `text` spells (with or without hyphens), or None."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        return None


def describe_value(value: Any) -> str:
    """A short, readable rendering of a field value for a history message."""
    if value is None or value == "":
        return NONE_SHOWN
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds")
    text = " ".join(str(value).split())
    if len(text) > HISTORY_VALUE_LIMIT:
        return text[: HISTORY_VALUE_LIMIT - 1] + "…"
    return text


def describe_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], names: Iterable[str]
) -> list[str]:
    """`Field name: old → new` for each name whose value differs between `before` and `after`."""
    lines = []
    for name in names:
        old, new = before.get(name), after.get(name)
        if old == new or (old in (None, "") and new in (None, "")):
            continue
        label = name.replace("_", " ").capitalize()
        lines.append(f"{label}: {describe_value(old)} → {describe_value(new)}")
    return lines


def admin_change_link(obj: Model | None, text: str | None = None) -> str:
    """A link to `obj`'s admin change page (HTML-escaped), or an empty string."""
    if obj is None:
        return ""
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def public_report_link(report_id: uuid.UUID, text: str = "rendered report") -> str:
    """A link to the dashboard's page for the report (rendered, sanitized), in a new tab."""
    url = reverse("incidents:report", args=[report_id])
    return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, text)


# What Django's list filters put after a field path: AllValuesFieldListFilter nothing,
# Choices/Boolean filters __exact, a related filter __id__exact, every "(None)" choice __isnull.
FILTER_SUFFIXES = ("", "__exact", "__id__exact", "__isnull")
HIERARCHY_PARTS = ("year", "month", "day")


def offered_lookups(model_admin: admin.ModelAdmin, request: HttpRequest) -> set[str]:
    """The query parameters the changelist's own filters and date hierarchy produce."""
    offered: set[str] = set()
    for item in model_admin.get_list_filter(request):
        if isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
            if item.parameter_name:  # Django refuses a filter without one
                offered.add(item.parameter_name)
            continue
        path = item[0] if isinstance(item, list | tuple) else item
        offered.update(f"{path}{suffix}" for suffix in FILTER_SUFFIXES)
    if model_admin.date_hierarchy:
        offered.update(f"{model_admin.date_hierarchy}__{part}" for part in HIERARCHY_PARTS)
    return offered


class LookupGuardMixin:
    """Changelist query parameters are the admin's own filters, and a bad one is a filter error.

    Django lets a staff user filter any column of the model with any lookup from the URL:
    `?context__icontains=zzzz` reads a million rows, `?failure_reason__regex=[` is a database
    error, `?created_at__year=9999` overflows Python's datetime. Only the parameters the page's
    filters and date hierarchy make are accepted (each served by an index); anything else, and
    any value the database or Python cannot take (a NUL character, a date past year 9999), sends
    the user back to the unfiltered list (Django's `?e=1`) with a message saying what was wrong.
    """

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if request is None:
            return False
        return lookup in offered_lookups(self, request)  # type: ignore[arg-type]

    def get_changelist_instance(self, request: HttpRequest):
        try:
            if any(
                "\x00" in key or any("\x00" in value for value in values)
                for key, values in request.GET.lists()
            ):
                raise IncorrectLookupParameters("a NUL character in the query string")
            return super().get_changelist_instance(request)  # type: ignore[misc]
        except DisallowedModelAdminLookup as error:
            key = str(error).removeprefix("Filtering by ").removesuffix(" not allowed")
            self._filter_error(request, f"{key} is not one of this list's filters")
            raise IncorrectLookupParameters(str(error)) from error
        except (IncorrectLookupParameters, OverflowError, ValueError) as error:
            self._filter_error(request, str(error) or "a value the list cannot filter by")
            raise IncorrectLookupParameters(str(error)) from error

    def _filter_error(self, request: HttpRequest, reason: str) -> None:
        # The redirect to ?e=1 drops the query string: the message says why the list is whole.
        if "e" not in request.GET:
            messages.error(request, f"Filter not applied: {reason}. Showing the whole list.")


class IdSearchMixin(LookupGuardMixin):
    """Admin search where a whole id finds its rows through an index before any text search.

    A single search term that is an id (a UUID for `uuid_search_fields`, any text for
    `exact_search_fields`) and matches some row returns exactly those rows: an index lookup,
    where the text search would read a million rows four times (count, page, date hierarchy).
    Any other search is Django's: icontains over `search_fields`.
    """

    uuid_search_fields: tuple[str, ...] = ()
    exact_search_fields: tuple[str, ...] = ()

    def id_query(self, search_term: str) -> Q | None:
        terms = search_term.split()
        if len(terms) != 1:
            return None
        (term,) = terms
        by_id = Q()
        for name in self.exact_search_fields:
            by_id |= Q(**{name: term})
        parsed = parse_uuid(term)
        if parsed is not None:
            for name in self.uuid_search_fields:
                by_id |= Q(**{name: parsed})
        return by_id or None

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        by_id = self.id_query(search_term)
        if by_id is not None and queryset.filter(by_id).exists():
            return queryset.filter(by_id), False
        return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]


class ResourceSearchMixin(IdSearchMixin):
    """Id search, then a resource search each term of which must match (terms are ANDed):

    - the resource name contains the term, any case (Django's icontains; migration 0010
      replaced the name-only trigram index with the list's search index, which this lookup
      does not use, so on PostgreSQL it reads the table);
    - or the namespace is the term (Kubernetes namespaces are lower-case DNS labels; an index);
    - or, for a UUID (as Kubernetes uids are), the resource uid is the term.

    Equality rather than "contains" for namespace and uid keeps the name's index usable: one
    un-indexed `LIKE '%…%'` in the OR would make PostgreSQL read every row.
    """

    search_fields: ClassVar[list[str] | tuple[str, ...]] = ("resource_name",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        by_id = self.id_query(search_term)
        if by_id is not None and queryset.filter(by_id).exists():
            return queryset.filter(by_id), False
        for term in search_term.split():
            matches = Q(resource_name__icontains=term) | Q(resource_namespace=term.lower())
            if parse_uuid(term) is not None:
                matches |= Q(resource_uid=term.lower())
            queryset = queryset.filter(matches)
        return queryset, False


class StoreBackedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose saves call the store; a store refusal is a message, never a 500.

    Forms validate against the locked row first, so the store refusing a save is a lost race (or
    a rule the form could not see). The whole change-form POST runs in one transaction, which
    rolls back on the refusal: nothing is half-saved, and the user sees why on the same page.
    """

    history_message_attr = "history_message"

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except StoreError as error:
            self.message_user(request, f"Nothing was saved: {error}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def construct_change_message(self, request, form, formsets, add=False):
        """The message save_model composed from what the store stored (old → new).

        Django's default lists the form's changed fields, which can differ from what was stored
        (a stale status the user left alone is "changed" in the form, yet nothing moves).
        """
        message = getattr(form, self.history_message_attr, None)
        if message is None:
            return super().construct_change_message(request, form, formsets, add)
        return message or "No fields changed."


class ReadOnlyInline(admin.TabularInline):
    """An inline that lists related history rows: nothing added, changed or deleted here."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
