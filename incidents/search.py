"""Free-text search over what the dashboard shows of an incident (`q`).

One text per incident, `UPPER(namespace/Kind/name cluster fault_type fault_id)`, is what a term is
matched against (a case-insensitive substring, so a fault id's prefix matches too). On PostgreSQL a
trigram GIN index on exactly that expression (migration `0010_dashboard_search`) serves
`LIKE '%TERM%'` for terms of three characters or more; SQLite has no such index and scans the
table (fine at the sizes SQLite is meant for).

A term that is, in any case, the whole name of a known cluster, namespace, kind or fault type
(the filter choices) means that value: an equality served by its `(column, created_at)` index.
As a substring such a common word matches a large part of the table, which no trigram index
makes fast, and the user means the value anyway.

Terms are words or "quoted phrases"; several terms narrow (AND). A term may also be an incident
id: a full UUID, or the 8-character short form the admin prints (a range on the primary key).
A term shorter than a trigram matches a whole fault id only: no index serves `LIKE '%ab%'`.
"""

from __future__ import annotations

import re
import uuid

from django.db.models import F, Func, Q, TextField

MIN_SUBSTRING_SEARCH = 3
SHORT_ID_LENGTH = 8
_TERM = re.compile(r'"([^"]*)"|(\S+)')
_SHORT_ID = re.compile(r"[0-9a-fA-F]{8}")


class _Joined(Func):
    """Its arguments joined by a fixed separator, in SQL (`a || '/' || b`).

    The separator is part of the SQL, not a parameter, so the expression is the same text on every
    query and the planner can match it to the index built on it.
    """

    template = "(%(expressions)s)"
    output_field = TextField()

    def __init__(self, *expressions, separator: str) -> None:
        if not re.fullmatch(r"[ /]", separator):
            raise ValueError(f"unsupported separator {separator!r}")
        self.arg_joiner = f" || '{separator}' || "
        super().__init__(*expressions)


class SearchText(Func):
    """`UPPER(namespace/Kind/name cluster fault_type fault_id)`: what `q` is matched against.

    Keep in step with the index in migration 0010_dashboard_search (an EXPLAIN test says when not).
    """

    function = "UPPER"
    output_field = TextField()

    def __init__(self) -> None:
        path = _Joined(
            F("resource_namespace"), F("resource_kind"), F("resource_name"), separator="/"
        )
        super().__init__(_Joined(path, F("cluster"), F("fault_type"), F("fault_id"), separator=" "))


def search_terms(values: list[str]) -> list[str]:
    """The terms of every `q` value: words, and "quoted phrases" kept whole (empty ones dropped)."""
    terms: list[str] = []
    for value in values:
        for phrase, word in _TERM.findall(value):
            term = (phrase or word).strip()
            if term:
                terms.append(term)
    return terms


def _incident_id_condition(term: str) -> Q | None:
    """The incident with this id (a full UUID) or ids starting with this short form."""
    if len(term) == SHORT_ID_LENGTH and _SHORT_ID.fullmatch(term):
        low = uuid.UUID(term.lower() + "0" * 24)
        high = uuid.UUID(term.lower() + "f" * 24)
        return Q(incident_id__gte=low, incident_id__lte=high)
    try:
        return Q(incident_id=uuid.UUID(term))
    except ValueError:
        return None


def known_values(choices: dict[str, list[str]]) -> dict[str, Q]:
    """For each known cluster, namespace, kind and fault type (upper-cased), the equality that
    finds it: {column: values} from the filter choices, which are cached."""
    found: dict[str, dict[str, list[str]]] = {}
    for column, values in choices.items():
        for value in values:
            found.setdefault(value.upper(), {}).setdefault(column, []).append(value)
    return {
        key: _any_of([Q(**{f"{column}__in": values}) for column, values in columns.items()])
        for key, columns in found.items()
    }


def _any_of(conditions: list[Q]) -> Q:
    result = Q()
    for condition in conditions:
        result |= condition
    return result


def term_condition(term: str, known: dict[str, Q] | None = None) -> Q:
    """The incidents one term finds (see the module's docstring)."""
    if known and term.upper() in known:
        # A word that names a cluster, namespace, kind or fault type means that value: an
        # equality on its (column, created_at) index. As a substring it would match a twentieth
        # of the table through the trigram index (1.4 s for a cluster at 1 M incidents).
        return known[term.upper()]
    if len(term) >= MIN_SUBSTRING_SEARCH:
        condition = Q(search_text__contains=term.upper())
    else:
        condition = Q(fault_id=term)
    by_id = _incident_id_condition(term)
    return condition | by_id if by_id is not None else condition
