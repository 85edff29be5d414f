"""`IncidentFilterSet`: the dashboard's filters, read from the query string (the contract's names).

- Every parameter but the two dates repeats for several values (`?status=failed&status=pending`,
  `?namespace=payments&namespace=checkout`); the page offers one drop-down value for namespace,
  kind and fault type, and a shared link may carry more.
- `created_after` / `created_before` take an ISO date or datetime (naive means UTC). A date as
  `created_before` includes that whole day: `created_before=2025-12-20` ends at midnight after it.
- `q` matches a resource name (case-insensitive substring), a fault id or an incident id (exact);
  several `q` match any of them.

Invalid values make the form invalid; the view then shows the errors and no rows, never every row.
Cluster, namespace, kind and fault type choices come from the data (`selectors.filter_choices`,
cached); a value missing from the cached choices is still accepted, since it may be newer than
the cache, and simply matches what it matches.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from incidents.choices import NEEDS_A_HUMAN, OnCallState, Severity, Status
from incidents.models import Incident
from incidents.selectors import FilterChoices, filter_choices

MAX_VALUES = 50  # per repeated parameter: more is a mistake or an attack, not a filter
MAX_TEXT = 255  # the columns' max_length
# The dates a time bound may name: far wider than any incident history, far from datetime's ends.
EARLIEST_BOUND = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_BOUND = datetime(9000, 1, 1, tzinfo=UTC)


def _plausible(value: str) -> bool:
    return 0 < len(value) <= MAX_TEXT and "\x00" not in value


class OpenMultipleChoiceField(forms.MultipleChoiceField):
    """A multiple choice whose choices are suggestions: any plausible value is valid."""

    def valid_value(self, value: str) -> bool:
        return _plausible(str(value))

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > MAX_VALUES:
            raise ValidationError(f"At most {MAX_VALUES} values, not {len(value)}.")


class ClosedMultipleChoiceField(forms.MultipleChoiceField):
    """A multiple choice over a fixed vocabulary, with a bound on repeats."""

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > MAX_VALUES:
            raise ValidationError(f"At most {MAX_VALUES} values, not {len(value)}.")


def _values(data, name: str) -> list[str]:
    values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
    return [value for value in values if value and str(value).strip()]


class RepeatableSelect(forms.Select):
    """A drop-down that still reads every repeat of its parameter (blank means "any")."""

    def value_from_datadict(self, data, files, name: str) -> list[str]:
        return _values(data, name)


class RepeatableSearchInput(forms.TextInput):
    """A search box that reads every repeat of its parameter; the page shows the first."""

    input_type = "search"

    def value_from_datadict(self, data, files, name: str) -> list[str]:
        return _values(data, name)

    def format_value(self, value: object) -> str | None:
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        return super().format_value(value)


class SearchTermsField(forms.Field):
    """One or more free-text terms, each at most `max_length` characters, no NUL."""

    widget = RepeatableSearchInput

    def __init__(self, *, max_length: int = 200, **kwargs) -> None:
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_python(self, value: object) -> list[str]:
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        return [str(term).strip() for term in values if str(term).strip()]

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > MAX_VALUES:
            raise ValidationError(f"At most {MAX_VALUES} values, not {len(value)}.")
        for term in value:
            if len(term) > self.max_length:
                raise ValidationError(
                    f"Ensure this value has at most {self.max_length} characters "
                    f"(it has {len(term)})."
                )
            if "\x00" in term:
                raise ValidationError("Null characters are not allowed.")


class TimeBoundField(forms.CharField):
    """An ISO 8601 date or datetime, cleaned to an aware datetime (naive input is UTC).

    As an upper bound (`upper=True`) a bare date means the end of that day.
    """

    default_error_messages = {
        "invalid": "Enter a date (2025-12-20) or a date and time (2025-12-20T15:30:00Z).",
    }

    def __init__(self, *, upper: bool = False, **kwargs) -> None:
        self.upper = upper
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_python(self, value: object) -> datetime | None:  # type: ignore[override]
        text = (super().to_python(value) or "").strip()
        if not text:
            return None
        try:
            # A bare date first: parse_datetime would read it as midnight, losing "whole day".
            day = parse_date(text) if len(text) == 10 else None
            if day is not None:
                if self.upper:
                    day += timedelta(days=1)
                moment = datetime.combine(day, time.min)
            else:
                parsed = parse_datetime(text)
                if parsed is None:
                    raise ValueError(text)
                moment = parsed
        except (ValueError, OverflowError):
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None
        if timezone.is_naive(moment):
            moment = moment.replace(tzinfo=UTC)
        # Year 1 or 9999 passes parsing but overflows once shifted to UTC, or in the summary
        # window's arithmetic (days before the bound): a 500 instead of a form error.
        if not EARLIEST_BOUND <= moment <= LATEST_BOUND:
            raise ValidationError(
                f"Enter a date between {EARLIEST_BOUND:%Y-%m-%d} and {LATEST_BOUND:%Y-%m-%d}.",
                code="out_of_range",
            )
        return moment

    def run_validators(self, value: object) -> None:
        # The length and NUL validators check the text, which to_python has already vetted.
        return


class ValuesInFilter(django_filters.MultipleChoiceFilter):
    """Several values of one column as a single `IN (...)`, without DISTINCT (no joins here)."""

    def filter(self, qs: QuerySet, value: list[str]) -> QuerySet:
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__{self.lookup_expr}": list(value)})


class OpenValuesInFilter(ValuesInFilter):
    field_class = OpenMultipleChoiceField


class ClosedValuesInFilter(ValuesInFilter):
    field_class = ClosedMultipleChoiceField


class SearchFilter(django_filters.Filter):
    field_class = SearchTermsField


class TimeBoundFilter(django_filters.Filter):
    field_class = TimeBoundField


# The drop-downs' first option: no filter.
ANY_LABELS = {
    "namespace": "Any namespace",
    "resource_kind": "Any kind",
    "fault_type": "Any fault type",
}
# A trigram index serves substring search from three characters on.
MIN_SUBSTRING_SEARCH = 3


class IncidentFilterSet(django_filters.FilterSet):
    """The dashboard's filters. Every filter's lookup is named; `q` ORs three lookups."""

    status = ClosedValuesInFilter(
        field_name="status",
        lookup_expr="in",
        choices=Status.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Triage status",
    )
    oncall = ClosedValuesInFilter(
        field_name="oncall_state",
        lookup_expr="in",
        choices=OnCallState.choices,
        widget=forms.CheckboxSelectMultiple,
        label="On call",
    )
    severity = ClosedValuesInFilter(
        field_name="severity",
        lookup_expr="in",
        choices=Severity.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Severity",
    )
    cluster = OpenValuesInFilter(
        field_name="cluster",
        lookup_expr="in",
        choices=[],
        widget=forms.CheckboxSelectMultiple,
        label="Cluster",
    )
    namespace = OpenValuesInFilter(
        field_name="resource_namespace",
        lookup_expr="in",
        choices=[],
        widget=RepeatableSelect,
        label="Namespace",
    )
    resource_kind = OpenValuesInFilter(
        field_name="resource_kind",
        lookup_expr="in",
        choices=[],
        widget=RepeatableSelect,
        label="Kind",
    )
    fault_type = OpenValuesInFilter(
        field_name="fault_type",
        lookup_expr="in",
        choices=[],
        widget=RepeatableSelect,
        label="Fault type",
    )
    created_after = TimeBoundFilter(
        field_name="created_at",
        lookup_expr="gte",
        label="Created from",
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD", "inputmode": "numeric"}),
    )
    created_before = TimeBoundFilter(
        field_name="created_at",
        lookup_expr="lt",
        upper=True,
        label="Created until",
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD", "inputmode": "numeric"}),
    )
    # The lookup is named for the record; `filter_q` ORs it with exact fault and incident ids.
    q = SearchFilter(
        method="filter_q",
        lookup_expr="icontains",
        max_length=200,
        label="Search",
        widget=RepeatableSearchInput(
            attrs={"placeholder": "resource name, fault id or incident id"}
        ),
    )

    class Meta:
        model = Incident
        fields: list[str] = []  # every filter is declared above

    def __init__(self, *args, choices: FilterChoices | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = choices or filter_choices()
        data = self.data or {}
        for name, values in (
            ("cluster", choices.clusters),
            ("namespace", choices.namespaces),
            ("resource_kind", choices.kinds),
            ("fault_type", choices.fault_types),
        ):
            offered = list(values)
            # Keep a chosen value visible (and selected) even when the cache has not seen it yet.
            chosen = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
            offered += [value for value in chosen if value and _plausible(value)][:MAX_VALUES]
            any_value = [("", ANY_LABELS[name])] if name in ANY_LABELS else []
            self.filters[name].extra["choices"] = any_value + [
                (value, value) for value in dict.fromkeys(offered)
            ]

    def filter_q(
        self, queryset: QuerySet[Incident], name: str, value: list[str]
    ) -> QuerySet[Incident]:
        """Each term: resource name contains it (trigram index on PostgreSQL), or the fault id is
        it, or the incident id is it when it is a UUID. Several terms match any of them.

        A term shorter than a trigram is matched as a whole fault id only: no index can serve
        `LIKE '%ab%'`, and at a million rows that scan costs half a second per request.
        """
        condition = Q()
        for text in value:
            condition |= Q(fault_id=text)
            if len(text) >= MIN_SUBSTRING_SEARCH:
                condition |= Q(resource_name__icontains=text)
            try:
                condition |= Q(incident_id=uuid.UUID(text))
            except ValueError:
                pass
        return queryset.filter(condition) if value else queryset

    @classmethod
    def with_default(cls, data, **kwargs) -> IncidentFilterSet:
        """The filters of `data`; with none given at all, what needs a human now (on call open
        or acknowledged). Any explicit filter, `oncall` included, replaces the default, so a
        link with filters means what it says."""
        if not any(name in data for name in cls.base_filters):
            data = data.copy()
            data.setlist("oncall", list(NEEDS_A_HUMAN))
            filterset = cls(data, **kwargs)
            filterset.is_default = True
            return filterset
        return cls(data, **kwargs)

    is_default = False

    @property
    def active(self) -> bool:
        """Whether a valid filter narrows the list."""
        return self.form.is_valid() and any(
            self.form.cleaned_data.get(name) not in (None, "", []) for name in self.filters
        )
