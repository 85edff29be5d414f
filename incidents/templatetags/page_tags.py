"""Template helpers for the list's layout: the chips of applied filters and the quick search.

Both read the list's effective query (`list_query`, the default view's filter included) and the
filter form's fields, whatever fields the form has: a new filter gets its chip without a change
here. Nothing is marked safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import template

register = template.Library()

# Page position and display controls: not filters, never a chip, dropped when the filter changes.
_NOT_FILTERS = ("after", "before", "last", "sort", "refresh")
_PAGE = ("after", "before", "last")


@dataclass(frozen=True)
class Chip:
    name: str
    label: str  # the field's label ("Cluster")
    value: str  # the value as the form shows it ("Acknowledged", "prod-us-east-1")
    remove: str  # the list's query without this one value, back on the first page


def _choice_labels(field) -> dict[str, str]:
    choices = getattr(field, "choices", None) or []
    labels: dict[str, str] = {}
    for value, label in choices:
        if isinstance(label, list | tuple):  # an optgroup
            labels.update({str(v): str(text) for v, text in label})
        else:
            labels[str(value)] = str(label)
    return labels


@register.simple_tag(takes_context=True)
def applied_filters(context) -> list[Chip]:
    """One chip per applied filter value (a multi-value filter gives one chip per value)."""
    query = context.get("list_query")
    filterset = context.get("filterset")
    if query is None or filterset is None:
        return []
    chips = []
    for name, field in filterset.form.fields.items():
        values = [value for value in query.getlist(name) if value != ""]
        labels = _choice_labels(field)
        for value in values:
            rest = query.copy()
            for page in _PAGE:
                rest.pop(page, None)
            rest.setlist(name, [other for other in values if other != value])
            chips.append(
                Chip(
                    name=name,
                    label=str(field.label or name),
                    value=labels.get(value, value),
                    remove=f"?{rest.urlencode()}",
                )
            )
    return chips


@register.simple_tag(takes_context=True)
def search_carry(context) -> list[tuple[str, str]]:
    """The hidden fields of the quick search: the filters in force, except the default view's
    (a search looks through the whole history, as the filter form's does) and the page."""
    query = context.get("list_query")
    if query is None or context.get("default_view"):
        return []
    return [
        (name, value)
        for name, values in query.lists()
        for value in values
        if name not in ("q", *_PAGE) and value != ""
    ]
