"""One raw fault record -> one validated, unsaved FaultEvent. No database access.

Accepted shapes (CONTRACT.md, "Fault event input"; ../shared/UPSTREAM.md is the authority):

- the fault object (logger `kubernetes/faults` today, `kubernetes/resource-faults` on servers
  built on 2025-12-20), camelCase as upstream sends it or with the snake_case column names.
  Without `faultId` (servers built before f202102) the id is derived as upstream derives it:
  the first 8 bytes of sha256("<cluster>:<faultType>:<resource uid>:") in hex, on the cluster as
  stored, and the stored context says so;
- the old `kubernetes/faults` payload (2025-12-19): an `event` object (`reason`, `message`,
  `timestamp`, `involvedObject`) plus `logs`, without a `faultId`; its fault id is derived
  deterministically from the cluster, the reason and the involved object;
- either of them inside an MCP `notifications/message` envelope (`params.data` an object or a
  JSON string), or as the bare `params` object (`level`, `logger`, `data`).

Ignored (counted): any other logger (`kubernetes/events`, `kubernetes/subscription_error`, …),
and a bare payload with an `event` object but neither fault fields nor `logs`: that is what an
`events`-mode server sends under `kubernetes/events` (a plain Kubernetes event), while the old
fault shape always carried `logs`. Timestamps are accepted from TIMESTAMP_MIN to TIMESTAMP_MAX.

`cluster=` (`--cluster`) names the cluster the records belong to, as nightcrier does: it fills an
empty `cluster` and replaces the server's name. What the server sent is kept: the stored context
holds upstream's `context` as it was, and under `_upstream` (incidents.context.UPSTREAM_KEY) its
severity word, timestamp string, cluster value, level and the record as sent;
`incidents.context.upstream_view` reads them back.

Guarantees: `parse_record` returns a FaultEvent whose fields satisfy the model's field rules and
the database's CHECK constraints (so a batch can be written without `full_clean`), or raises
`RejectedRecord` whose `reason` names the field, or `IgnoredRecord` for a notification that
carries no fault. Nothing upstream sent is dropped: `context` keeps upstream's context, the
`logs` array and every key that has no column, as JSON text.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from incidents.choices import Severity
from incidents.context import stored_context
from incidents.models import FaultEvent

FAULT_LOGGERS = frozenset({"kubernetes/resource-faults", "kubernetes/faults"})
EVENTS_LOGGER = "kubernetes/events"
# The fault time we accept: Go's zero time (year 1), year 9999 and their offsets overflow
# Python's datetime and break every page that shows them; no real fault is dated outside this.
TIMESTAMP_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TIMESTAMP_MAX = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
CLUSTER_HINT = "an in-cluster server names none: pass --cluster NAME"
_RANGE_TEXT = "accepted from 2000-01-01T00:00:00Z up to 2100-01-01T00:00:00Z"
NOTIFICATION_METHOD = "notifications/message"
# Upstream's kubernetes/faults events have no severity of their own and no envelope level when
# read from a file: a Warning event is a medium fault.
DEFAULT_FAULTS_SEVERITY = Severity.MEDIUM
MAX_FIELD_LENGTH = 255  # every CharField the payload fills is max_length=255
_SEVERITIES = frozenset(Severity.values)  # Severity.values builds a new list on each access

# RFC 3339 section 5.6 date-time: full date, "T" (or space, as the RFC allows), time, offset.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)

# Payload fields with a column: (upstream camelCase key, snake_case column name).
_TOP_LEVEL = {
    "fault_id": ("faultId", "fault_id"),
    "subscription_id": ("subscriptionId", "subscription_id"),
    "cluster": ("cluster", "cluster"),
    "fault_type": ("faultType", "fault_type"),
    "severity": ("severity", "severity"),
    "timestamp": ("timestamp", "timestamp"),
}
# resource.<key> (either spelling) and the flat column that may carry it instead.
_RESOURCE = {
    "resource_api_version": ("apiVersion", "api_version", "resource_api_version"),
    "resource_kind": ("kind", "kind", "resource_kind"),
    "resource_name": ("name", "name", "resource_name"),
    "resource_namespace": ("namespace", "namespace", "resource_namespace"),
    "resource_uid": ("uid", "uid", "resource_uid"),
}
# kubernetes/faults: event keys that fill columns, and the involvedObject keys that do.
_CONSUMED_FROM_EVENT = frozenset({"reason", "message", "timestamp", "involvedObject"})
_INVOLVED_KEYS = frozenset(camel for camel, _snake, _flat in _RESOURCE.values())


class RejectedRecord(Exception):
    """The record is invalid; `reason` says which field and why (e.g. `missing faultId`)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class IgnoredRecord(Exception):
    """A well-formed notification that carries no fault (another logger or method)."""

    def __init__(self, logger: str, data: Any) -> None:
        self.logger = logger
        self.data = data
        super().__init__(f"notification from logger {logger!r} is not a fault")


def parse_record(
    raw: Mapping | str | bytes, *, level_hint: str | None = None, cluster: str | None = None
) -> FaultEvent:
    """Validate one record and build the unsaved FaultEvent it describes.

    `raw` is a decoded JSON object, or its text (str or UTF-8 bytes). `level_hint` is an MCP log
    level used for a `kubernetes/faults` payload that arrives without an envelope carrying one.
    `cluster` (the operator's `--cluster`) is the cluster stored, whatever the server sent.
    `received_at` is now. Raises RejectedRecord or IgnoredRecord; never touches the database.
    """
    record, text = _decode(raw)
    level = level_hint
    enveloped = _is_envelope(record)
    if enveloped:
        level, payload = _unwrap(record, level_hint)
    else:
        payload = record
    sent = _Sent(text=text, level=level, cluster=cluster)
    if "event" in payload and not any(key in payload for key in _FAULT_KEYS):
        if not enveloped and "logs" not in payload:
            raise IgnoredRecord(f"{EVENTS_LOGGER} (a bare event payload)", payload)
        return _from_faults_payload(payload, level, sent)
    return _from_resource_faults_payload(payload, sent)


_FAULT_KEYS = ("faultId", "fault_id", "faultType", "fault_type")


@dataclass(frozen=True, slots=True)
class _Sent:
    """What came with the payload: the record's text, the envelope's level, the --cluster."""

    text: str
    level: str | None
    cluster: str | None


# -- decoding and envelopes -----------------------------------------------------------------
def _max_bytes() -> int:
    return settings.TRIAGE_MAX_RECORD_BYTES


def _too_large(size: int) -> RejectedRecord:
    return RejectedRecord(f"record is {size} bytes, over the limit of {_max_bytes()} bytes")


def _decode(raw: Mapping | str | bytes) -> tuple[dict, str]:
    """The record as a JSON object, and its text as sent (re-encoded for a Mapping)."""
    limit = _max_bytes()
    if isinstance(raw, bytes | bytearray):
        if len(raw) > limit:
            raise _too_large(len(raw))
        try:
            # Decoded here, not by json.loads, which would also guess UTF-16 and UTF-32.
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RejectedRecord(f"record is not UTF-8 text ({error.reason})") from None
        value = _loads(text, "record")
    elif isinstance(raw, str):
        # A str holds at most 4 UTF-8 bytes per character: count exactly only near the limit.
        if len(raw) > limit or (
            len(raw) * 4 > limit and len(raw.encode("utf-8", "replace")) > limit
        ):
            raise _too_large(len(raw.encode("utf-8", "replace")))
        value = _loads(raw, "record")
        text = raw
    elif isinstance(raw, Mapping):
        try:
            text = json.dumps(raw, ensure_ascii=False, default=str)
        except RecursionError:
            raise _too_deep("record") from None
        except ValueError:  # an integer of thousands of digits (sys.get_int_max_str_digits)
            raise _too_long_number("record") from None
        size = len(text.encode("utf-8", "replace"))
        if size > limit:
            raise _too_large(size)
        value = raw
    else:
        raise RejectedRecord(f"record is a {type(raw).__name__}, not JSON text or an object")
    if not isinstance(value, dict):
        raise RejectedRecord(f"record is {_json_type(value)}, not a JSON object")
    return value, text


def _loads(text: str, what: str) -> Any:
    """json.loads, with every way it can fail as a rejection that names `what`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RejectedRecord(_json_error(what, error)) from None
    except RecursionError:
        raise _too_deep(what) from None
    except ValueError:  # an integer of thousands of digits (sys.get_int_max_str_digits)
        raise _too_long_number(what) from None


def _too_deep(what: str) -> RejectedRecord:
    # The json module recurses once per level: thousands of nested brackets exhaust the stack.
    return RejectedRecord(f"{what} is nested too deeply to parse")


def _too_long_number(what: str) -> RejectedRecord:
    limit = sys.get_int_max_str_digits()
    return RejectedRecord(f"{what} holds a number of more than {limit} digits")


def _json_error(what: str, error: json.JSONDecodeError) -> str:
    return f"{what} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    if value is None:
        return "JSON null"
    return "a JSON object"


def _is_envelope(record: dict) -> bool:
    if "jsonrpc" in record or "method" in record:
        return True
    # MCP's LoggingMessageNotificationParams on its own: {"level", "logger", "data"}.
    return "logger" in record and "data" in record


def _unwrap(record: dict, level_hint: str | None) -> tuple[str | None, dict]:
    """The envelope's level and its fault payload; IgnoredRecord for what is no fault."""
    if "jsonrpc" in record or "method" in record:
        method = record.get("method")
        params = record.get("params")
        if method != NOTIFICATION_METHOD:
            raise IgnoredRecord(f"(method {method})", params)
        if not isinstance(params, dict):
            raise RejectedRecord("params is missing or not an object")
    else:
        params = record
    logger = params.get("logger")
    data = params.get("data")
    if logger not in FAULT_LOGGERS:
        raise IgnoredRecord(str(logger), data)
    if isinstance(data, str):
        data = _loads(data, "params.data")
    if data is None:
        raise RejectedRecord("missing params.data")
    if not isinstance(data, dict):
        raise RejectedRecord(f"params.data is {_json_type(data)}, not a JSON object")
    level = params.get("level", level_hint)
    if level is not None and not isinstance(level, str):
        raise RejectedRecord(f"params.level is {_json_type(level)}, not a string")
    return level, data


# -- field rules ----------------------------------------------------------------------------
def _text(value: Any, name: str, *, required: bool) -> str:
    """A string column value: a string, no NUL (PostgreSQL refuses it), at most 255 chars."""
    if value is None:
        if required:
            raise RejectedRecord(f"missing {name}")
        return ""
    if not isinstance(value, str):
        raise RejectedRecord(f"{name} is {_json_type(value)}, not a string")
    if required and not value.strip():
        raise RejectedRecord(f"{name} is empty")
    if len(value) > MAX_FIELD_LENGTH:
        raise RejectedRecord(f"{name} is longer than {MAX_FIELD_LENGTH} characters")
    if "\x00" in value:
        raise RejectedRecord(f"{name} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, from "\ud800" in the JSON
            raise RejectedRecord(f"{name} is not valid Unicode (a lone surrogate)") from None
    return value


def severity_choices() -> list[str]:
    """Every severity a record may carry: ours, then the mapped upstream levels."""
    mapped = [level for level in settings.TRIAGE_SEVERITY_MAP if level not in _SEVERITIES]
    return [*Severity.values, *mapped]


def normalize_severity(value: Any, name: str = "severity") -> str:
    """Our severity for `value` (case-insensitive; upstream levels go through the setting)."""
    if value is None:
        raise RejectedRecord(f"missing {name}")
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _SEVERITIES:
            return key
        mapped = settings.TRIAGE_SEVERITY_MAP.get(key)
        if mapped in _SEVERITIES:
            return mapped
        shown = repr(value)
    else:
        shown = json.dumps(value)
    raise RejectedRecord(f"{name} {shown} is not one of {', '.join(severity_choices())}")


def parse_timestamp(value: Any, name: str = "timestamp") -> datetime:
    """An aware datetime (UTC) from an RFC 3339 date-time string."""
    if value is None:
        raise RejectedRecord(f"missing {name}")
    if not isinstance(value, str):
        raise RejectedRecord(f"{name} {json.dumps(value)} is not RFC 3339")
    if _RFC3339.fullmatch(value):
        try:
            parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
        except ValueError:
            pass  # the shape is right but a value is out of range (month 13, 25:00…)
        else:
            utc: datetime | None
            try:
                # OverflowError: year 1 or 9999 pushed past datetime's range by the offset.
                utc = parsed.astimezone(UTC)
            except OverflowError:
                utc = None
            if utc is None or not TIMESTAMP_MIN <= utc < TIMESTAMP_MAX:
                raise RejectedRecord(f"{name} {value!r} is out of range ({_RANGE_TEXT})")
            return utc
    raise RejectedRecord(f"{name} {value!r} is not RFC 3339")


def _first(mapping: dict, keys: tuple[str, ...]) -> tuple[str, Any]:
    """(key, value) of the first of `keys` present; (keys[0], None) when none is."""
    for key in keys:
        if key in mapping:
            return key, mapping[key]
    return keys[0], None


def _context_json(context: dict, upstream: dict[str, Any], sent: _Sent) -> str:
    if sent.level is not None:
        upstream["level"] = sent.level
    return stored_context(context, upstream, record=sent.text, limit=_max_bytes())


def _cluster(value: Any, name: str, sent: _Sent) -> str:
    """The cluster to store: --cluster when given, else the server's (never empty)."""
    if sent.cluster is not None:
        return _text(sent.cluster, "--cluster", required=True)
    if value is None:
        raise RejectedRecord(f"missing {name} ({CLUSTER_HINT})")
    if isinstance(value, str) and not value.strip():
        raise RejectedRecord(f"{name} is empty ({CLUSTER_HINT})")
    return _text(value, name, required=True)


def derive_fault_id(cluster: str, fault_type: str, resource_uid: str, container: str = "") -> str:
    """Upstream's fault id (fork pkg/events/fault_id.go): the first 8 bytes, in hex, of
    sha256("<cluster>:<faultType>:<resourceUID>:<containerName>")."""
    key = f"{cluster}:{fault_type}:{resource_uid}:{container}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# -- the two payload shapes -----------------------------------------------------------------
_FIELD_ORDER = tuple(field.attname for field in FaultEvent._meta.concrete_fields)


def _fault_event(**values: Any) -> FaultEvent:
    """FaultEvent(**values) with received_at = now, built positionally: Django's fast path
    (keyword construction costs about twice as much, and ingestion builds millions)."""
    values["received_at"] = timezone.now()
    # django-stubs' plugin takes the unpacked list for the first field (fault_id).
    return FaultEvent(*[values[name] for name in _FIELD_ORDER])  # type: ignore[misc]


def _from_resource_faults_payload(payload: dict, sent: _Sent) -> FaultEvent:
    values: dict[str, Any] = {}
    upstream: dict[str, Any] = {}  # what the columns do not hold as upstream sent it
    used = {"context", "resource"}  # payload keys that went into a column
    for column, keys in _TOP_LEVEL.items():
        name, value = _first(payload, keys)
        used.add(name)
        if column == "fault_id" and value is None:
            continue  # derived below, from the columns as stored
        if column == "severity":
            values[column] = normalize_severity(value, name)
            upstream["severity"] = value
        elif column == "timestamp":
            values[column] = parse_timestamp(value, name)
            upstream["timestamp"] = value
        elif column == "cluster":
            values[column] = _cluster(value, name, sent)
            if name in payload:
                upstream["cluster"] = value
        else:
            values[column] = _text(value, name, required=column != "subscription_id")

    resource = payload.get("resource")
    if resource is None:
        resource = {}
    elif not isinstance(resource, dict):
        raise RejectedRecord(f"resource is {_json_type(resource)}, not a JSON object")
    used_in_resource = set()
    for column, (camel, snake, flat) in _RESOURCE.items():
        if camel in resource or snake in resource:
            key, value = _first(resource, (camel, snake))
            used_in_resource.add(key)
            values[column] = _text(value, f"resource.{key}", required=False)
        else:
            used.add(flat)
            values[column] = _text(payload.get(flat), flat, required=False)

    # Nothing upstream sent is dropped: what has no column (or lost to the other spelling of
    # the same field) stays in context.
    context: dict[str, Any] = {}
    if payload.get("context") is not None:
        context["context"] = payload["context"]
    for key, value in payload.items():
        if key not in used:
            context[key] = value
    extra_resource = {k: v for k, v in resource.items() if k not in used_in_resource}
    if extra_resource:
        context["resource"] = extra_resource
    if "fault_id" not in values:
        # A server built before upstream's f202102 sends no faultId: derive it as upstream does.
        if not values["resource_uid"]:
            raise RejectedRecord("missing faultId, and no resource.uid to derive it from")
        values["fault_id"] = derive_fault_id(
            values["cluster"], values["fault_type"], values["resource_uid"]
        )
        upstream["faultIdDerived"] = True
    return _fault_event(context=_context_json(context, upstream, sent), **values)


def fault_id_for(
    cluster: str, reason: str, *, uid: str = "", namespace: str = "", kind: str = "", name: str = ""
) -> str:
    """The deterministic fault id of a kubernetes/faults event (16 hex digits, like upstream's).

    Keyed on the object's uid when upstream sent one, else on namespace/kind/name, so the same
    reason on the same object in the same cluster is always the same fault.
    """
    subject = f"uid:{uid}" if uid else f"obj:{namespace}/{kind}/{name}"
    digest = hashlib.sha256("\x1f".join((cluster, reason, subject)).encode("utf-8"))
    return digest.hexdigest()[:16]


def _from_faults_payload(payload: dict, level: str | None, sent: _Sent) -> FaultEvent:
    event = payload["event"]
    if not isinstance(event, dict):
        raise RejectedRecord(f"event is {_json_type(event)}, not a JSON object")
    cluster = _cluster(payload.get("cluster"), "cluster", sent)
    reason = _text(event.get("reason"), "event.reason", required=True)
    involved = event.get("involvedObject")
    if involved is None:
        raise RejectedRecord("missing event.involvedObject")
    if not isinstance(involved, dict):
        raise RejectedRecord(f"event.involvedObject is {_json_type(involved)}, not a JSON object")
    resource = {
        column: _text(involved.get(camel), f"event.involvedObject.{camel}", required=False)
        for column, (camel, _snake, _flat) in _RESOURCE.items()
    }
    if not resource["resource_namespace"]:
        resource["resource_namespace"] = _text(
            event.get("namespace"), "event.namespace", required=False
        )
    if not (resource["resource_uid"] or resource["resource_name"]):
        raise RejectedRecord("event.involvedObject has neither uid nor name")

    # Upstream leaves `timestamp` empty when the event had no time; fall back as kubectl does.
    ts_key, ts_value = "event.timestamp", event.get("timestamp")
    if not ts_value:
        for key in ("lastTimestamp", "firstTimestamp"):
            if event.get(key):
                ts_key, ts_value = f"event.{key}", event[key]
                break
    timestamp = parse_timestamp(ts_value or None, ts_key)
    upstream: dict[str, Any] = {"timestamp": ts_value, "faultIdDerived": True}
    if "cluster" in payload:
        upstream["cluster"] = payload["cluster"]
    if payload.get("severity") is not None:
        upstream["severity"] = payload["severity"]

    if payload.get("severity") is not None:
        severity = normalize_severity(payload["severity"])
    elif level is not None:
        severity = normalize_severity(level, "level")
    else:
        severity = DEFAULT_FAULTS_SEVERITY

    context: dict[str, Any] = {}
    if event.get("message") is not None:
        context["context"] = event["message"]
    rest_of_event = {k: v for k, v in event.items() if k not in _CONSUMED_FROM_EVENT}
    if rest_of_event:
        context["event"] = rest_of_event
    extra_involved = {k: v for k, v in involved.items() if k not in _INVOLVED_KEYS}
    if extra_involved:
        context["involvedObject"] = extra_involved
    for key, value in payload.items():
        if key not in ("event", "cluster", "subscriptionId", "subscription_id", "severity"):
            context[key] = value
    _key, subscription = _first(payload, ("subscriptionId", "subscription_id"))
    return _fault_event(
        fault_id=fault_id_for(
            cluster,
            reason,
            uid=resource["resource_uid"],
            namespace=resource["resource_namespace"],
            kind=resource["resource_kind"],
            name=resource["resource_name"],
        ),
        subscription_id=_text(subscription, _key, required=False),
        cluster=cluster,
        fault_type=reason,
        severity=severity,
        timestamp=timestamp,
        context=_context_json(context, upstream, sent),
        **resource,
    )
