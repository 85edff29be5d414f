"""`IncidentFilterSet`: the dashboard's filters, read from the query string (the contract's names).

- Every parameter but the dates, `range` and `time` repeats for several values
  (`?status=failed&status=pending`, `?namespace=payments&namespace=checkout`); cluster, namespace,
  kind and fault type are checkbox lists with the number of faults beside each value (a type-ahead
  in `static/incidents/app.js` narrows long lists; without JavaScript they are plain checkboxes).
- `occurred_after` / `occurred_before` bound the fault's `timestamp`; `range` (15m, 1h, 6h, 24h,
  7d, 30d, custom) is a quick range ending now, on fault time unless `time=received`. A reversed
  range, or a quick range beside a from-date of the same time, is a form error.
- `created_after` / `created_before` (and the `occurred_*` pair) take an ISO date or datetime
  (naive means UTC) or `now`, `now-15m`, `now-1h`, `now-7d`. A date as an upper bound includes
  that whole day: `created_before=2025-12-20` ends at midnight after it.
- `q` matches what the list shows: resource name, namespace, kind, the `namespace/Kind/name` path,
  cluster, fault type, fault id (any case, a substring or prefix), an incident id (full or its
  8-character short form). Several words, or several `q`, narrow; "quoted phrases" stay together
  (`incidents.search`).

Invalid values make the form invalid; the view then shows the errors and no rows, never every row.
Cluster, namespace, kind and fault type choices come from the data (`selectors.filter_choices`,
cached); a value missing from the cached choices is still accepted, since it may be newer than
the cache, and simply matches what it matches.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import reduce

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from incidents.choices import NEEDS_A_HUMAN, OnCallState, Severity, Status, Verdict
from incidents.models import Incident, ReportVerdict
from incidents.search import SearchText, known_values, search_terms, term_condition
from incidents.selectors import FilterChoices, filter_choices

MAX_VALUES = 50  # per repeated parameter: more is a mistake or an attack, not a filter
MAX_TEXT = 255  # the columns' max_length
# The dates a time bound may name: far wider than any incident history, far from datetime's ends.
EARLIEST_BOUND = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_BOUND = datetime(9000, 1, 1, tzinfo=UTC)


# `now`, `now-15m`, `now-1h`, `now-7d`, `now-2w`: a moment before the request.
_RELATIVE = re.compile(r"now(?:\s*-\s*(\d{1,7})\s*([mhdw]))?")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# `range`: the quick ranges, each the last so long before now.
QUICK_RANGES = {
    "15m": ("last 15 minutes", timedelta(minutes=15)),
    "1h": ("last hour", timedelta(hours=1)),
    "6h": ("last 6 hours", timedelta(hours=6)),
    "24h": ("last 24 hours", timedelta(hours=24)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
}
# `time`: which moment the range, the time filters' summary window and chart count by.
TIME_BASES = {"occurred": ("timestamp", "fault time"), "received": ("created_at", "received")}
DEFAULT_TIME_BASIS = "occurred"


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


class RepeatableCheckboxes(forms.CheckboxSelectMultiple):
    """Checkboxes that ignore blank values (a hand-written `?namespace=` means "any")."""

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
        "invalid": (
            "Enter a date (2025-12-20), a date and time (2025-12-20T15:30:00Z) "
            "or a time before now (now-15m, now-1h, now-7d)."
        ),
    }

    def __init__(self, *, upper: bool = False, **kwargs) -> None:
        self.upper = upper
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_python(self, value: object) -> datetime | None:  # type: ignore[override]
        text = (super().to_python(value) or "").strip()
        if not text:
            return None
        relative = _RELATIVE.fullmatch(text.lower())
        if relative:
            amount, unit = relative.group(1), relative.group(2)
            delta = timedelta(**{_UNITS[unit]: int(amount)}) if amount else timedelta()
            if delta > LATEST_BOUND - EARLIEST_BOUND:
                raise ValidationError(self.error_messages["invalid"], code="invalid")
            return timezone.now() - delta
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


def _implied_basis(data: dict) -> str:
    """The time basis when `time` is not given: received time when only created_* bounds are
    given (a link from before fault time existed means what it meant), else fault time."""
    if data.get("range") in QUICK_RANGES:
        return DEFAULT_TIME_BASIS
    created = data.get("created_after") or data.get("created_before")
    occurred = data.get("occurred_after") or data.get("occurred_before")
    return "received" if created and not occurred else DEFAULT_TIME_BASIS


# Parameters of the filter form that narrow nothing by themselves.
NOT_FILTERS = ("time",)


class TimeRangeForm(forms.Form):
    """The filters' form: a range ends after it starts; a quick range or dates, not both."""

    def clean(self) -> dict:
        data = super().clean() or {}
        for prefix, label in (("created", "Created"), ("occurred", "Occurred")):
            start, end = data.get(f"{prefix}_after"), data.get(f"{prefix}_before")
            if start is not None and end is not None and start >= end:
                self.add_error(
                    f"{prefix}_before",
                    f"{label} until ({end:%Y-%m-%d %H:%M} UTC) must be later than "
                    f"{label.lower()} from ({start:%Y-%m-%d %H:%M} UTC).",
                )
        quick = data.get("range")
        prefix = (
            "occurred" if (data.get("time") or _implied_basis(data)) == "occurred" else "created"
        )
        if quick in QUICK_RANGES and data.get(f"{prefix}_after") is not None:
            self.add_error(
                "range",
                f"Choose a quick range or a {prefix}-from date, not both "
                f"(or set the range to Custom).",
            )
        return data


@dataclass(frozen=True)
class TimeRange:
    """The time range the list shows: on which basis, from and until when (None: open)."""

    basis: str  # a key of TIME_BASES
    start: datetime | None
    end: datetime | None
    quick: str | None  # a key of QUICK_RANGES when the range is one

    @property
    def column(self) -> str:
        return TIME_BASES[self.basis][0]

    @property
    def description(self) -> str:
        """The range in words, for the heading: "fault time: last hour", "received: all time"."""
        what = TIME_BASES[self.basis][1]
        if self.quick:
            return f"{what}: {QUICK_RANGES[self.quick][0]}"
        start, end = self.start, self.end
        if start is None:
            return f"{what}: all time" if end is None else f"{what}: before {_moment(end)}"
        if end is None:
            return f"{what}: since {_moment(start)}"
        return f"{what}: {_moment(start)} to {_moment(end)}"


def _moment(value: datetime) -> str:
    value = value.astimezone(UTC)
    if value.time() == time.min:
        return f"{value:%Y-%m-%d}"
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"


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
        widget=RepeatableCheckboxes,
        label="Cluster",
    )
    namespace = OpenValuesInFilter(
        field_name="resource_namespace",
        lookup_expr="in",
        choices=[],
        widget=RepeatableCheckboxes,
        label="Namespace",
    )
    resource_kind = OpenValuesInFilter(
        field_name="resource_kind",
        lookup_expr="in",
        choices=[],
        widget=RepeatableCheckboxes,
        label="Kind",
    )
    fault_type = OpenValuesInFilter(
        field_name="fault_type",
        lookup_expr="in",
        choices=[],
        widget=RepeatableCheckboxes,
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
    occurred_after = TimeBoundFilter(
        field_name="timestamp",
        lookup_expr="gte",
        label="Occurred from",
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD or now-1h"}),
    )
    occurred_before = TimeBoundFilter(
        field_name="timestamp",
        lookup_expr="lt",
        upper=True,
        label="Occurred until",
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD or now"}),
    )
    range = django_filters.ChoiceFilter(
        method="filter_range",
        choices=[(key, label.capitalize()) for key, (label, _) in QUICK_RANGES.items()]
        + [("custom", "Custom (the dates)")],
        empty_label="Any time",
        label="Time range",
    )
    time = django_filters.ChoiceFilter(
        method="filter_basis",
        choices=[("occurred", "Fault time"), ("received", "Received")],
        empty_label=None,
        widget=forms.RadioSelect,
        label="Time is",
    )
    # Verdicts on the incident's reports: any of the chosen verdicts, "any" (judged) or "none".
    verdict = ClosedValuesInFilter(
        method="filter_verdict",
        lookup_expr="in",
        choices=[*Verdict.choices, ("any", "Has a verdict"), ("none", "No verdict")],
        widget=forms.CheckboxSelectMultiple,
        label="Verdict",
    )
    # The lookup is named for the record; `filter_q` ORs it with exact fault and incident ids.
    q = SearchFilter(
        method="filter_q",
        lookup_expr="icontains",
        max_length=200,
        label="Search",
        widget=RepeatableSearchInput(
            attrs={"placeholder": 'name, namespace, kind, cluster, fault, id; "a phrase"'}
        ),
    )

    class Meta:
        model = Incident
        fields: list[str] = []  # every filter is declared above
        form = TimeRangeForm

    def __init__(self, *args, choices: FilterChoices | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = choices or filter_choices()
        self.choices = choices
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
            counts = choices.counts.get(name, {})
            self.filters[name].extra["choices"] = [
                (value, f"{value} ({counts[value]:,})" if value in counts else value)
                for value in dict.fromkeys(offered)
            ]

    def filter_range(self, queryset: QuerySet[Incident], name: str, value: str):
        """The last 15 minutes ... 30 days before now, of fault time or received time."""
        if value not in QUICK_RANGES:
            return queryset  # "custom": the date fields say it
        data = self.form.cleaned_data
        column = TIME_BASES[data.get("time") or _implied_basis(data)][0]
        start = timezone.now() - QUICK_RANGES[value][1]
        return queryset.filter(**{f"{column}__gte": start})

    def filter_basis(self, queryset: QuerySet[Incident], name: str, value: str):
        return queryset  # not a filter: which time `range` and the summary count by

    def time_range(self, *, now: datetime | None = None) -> TimeRange:
        """The time range the list shows, on the chosen basis (call on a valid form)."""
        data = self.form.cleaned_data
        basis = data.get("time") or _implied_basis(data)
        prefix = "occurred" if basis == "occurred" else "created"
        start, end = data.get(f"{prefix}_after"), data.get(f"{prefix}_before")
        quick = data.get("range") if data.get("range") in QUICK_RANGES else None
        if quick:
            start = (now or timezone.now()) - QUICK_RANGES[quick][1]
        return TimeRange(basis=basis, start=start, end=end, quick=quick)

    def filter_q(
        self, queryset: QuerySet[Incident], name: str, value: list[str]
    ) -> QuerySet[Incident]:
        """Every term of every `q` must match (see `incidents.search`)."""
        terms = search_terms(value)
        if not terms:
            return queryset
        queryset = queryset.alias(search_text=SearchText())
        known = known_values(
            {
                "cluster": self.choices.clusters,
                "resource_namespace": self.choices.namespaces,
                "resource_kind": self.choices.kinds,
                "fault_type": self.choices.fault_types,
            }
        )
        for term in terms:
            queryset = queryset.filter(term_condition(term, known))
        return queryset

    def filter_verdict(
        self, queryset: QuerySet[Incident], name: str, value: list[str]
    ) -> QuerySet[Incident]:
        """EXISTS over the incident's reports' verdicts (report_verdicts_one_per_person leads
        with the report; triage_reports_incident_idx finds the reports). Several values OR."""
        if not value:
            return queryset
        judged = ReportVerdict.objects.filter(report__incident_id=OuterRef("pk"))
        verdicts = [choice for choice in value if choice in Verdict.values]
        conditions = [
            *([Q(Exists(judged.filter(verdict__in=verdicts)))] if verdicts else []),
            *([Q(Exists(judged))] if "any" in value else []),
            *([~Q(Exists(judged))] if "none" in value else []),
        ]
        return queryset.filter(reduce(operator.or_, conditions))

    @classmethod
    def with_default(cls, data, **kwargs) -> IncidentFilterSet:
        """The filters of `data`; with none given at all, what needs a human now (on call open
        or acknowledged). Any explicit filter, `oncall` included, replaces the default, so a
        link with filters means what it says."""
        if not any(name in data for name in cls.base_filters if name not in NOT_FILTERS):
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
            self.form.cleaned_data.get(name) not in (None, "", [])
            for name in self.filters
            if name not in NOT_FILTERS
        )
