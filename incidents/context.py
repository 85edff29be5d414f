"""A fault's stored context (upstream JSON text) read back for pages and workspaces.

Contexts are untrusted: container logs with terminal escapes, upstream's "\\ud800" escapes that
json.loads turns into lone surrogates no UTF-8 response can encode, nesting deeper than the
parser's stack. Every reader goes through these two functions.
"""

import json
import re
from typing import Any

# CSI (colours, cursor moves), OSC (titles, hyperlinks) and two-byte escapes.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Other control characters, except tab and newline (a carriage return ends a line too).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class NotJSON(ValueError):
    """The stored context is not JSON the parser can read."""


def load_context(text: str) -> Any:
    """The context parsed ({} when empty). Raises NotJSON for text that is not (readable) JSON."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise NotJSON(str(error)) from None


def printable(text: object) -> str:
    """`text` without terminal escapes and control characters, lone surrogates as U+FFFD.

    Templates escape the result; this makes it readable and encodable, not safe HTML.
    """
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", _ANSI.sub("", text)))


# -- what upstream sent ---------------------------------------------------------------------
# The key of the stored context under which ingestion keeps what upstream sent and our columns
# do not hold as sent (incidents.events writes it; upstream_view reads it). Upstream's own keys
# never start with "_"; a payload key of that name is kept as "_upstream (sent)".
UPSTREAM_KEY = "_upstream"


def stored_context(context: dict, upstream: dict[str, Any], *, record: str, limit: int) -> str:
    """The context column's JSON text: upstream's keys (`context`) with what else it sent
    (`upstream`) under UPSTREAM_KEY, and the record as sent when its JSON text fits `limit`
    by itself (the rest of the context already holds most of it: a record at the limit must
    not double what is stored per fault)."""
    if UPSTREAM_KEY in context:
        context[f"{UPSTREAM_KEY} (sent)"] = context.pop(UPSTREAM_KEY)
    size = len(json.dumps(record))
    if size <= limit:
        upstream["record"] = record
    else:
        upstream["recordOmitted"] = f"{size} bytes as JSON, over {limit}"
    context[UPSTREAM_KEY] = upstream
    # ensure_ascii: a lone surrogate from "\ud800" in the input stays an escape, never invalid
    # UTF-8 for the database; the JSON means the same either way.
    return json.dumps(context, separators=(",", ":"))


def upstream_view(fault_or_incident: Any) -> dict[str, Any]:
    """What upstream sent for a FaultEvent or an Incident (both carry the fault's columns and its
    stored context), for workspaces that hand agents upstream's own record (event.json,
    incident.json). Returns a dict with these keys:

    - `severity`: upstream's severity word as sent (`critical`, `warning`, `info`, …); for the
      old `event` shape, which has none, the notification's level; for a row stored before
      ingestion kept it, our own severity column.
    - `context`: upstream's `context` string exactly, "" when upstream sent none (it omits an
      empty one); for the old `event` shape, the event's message. A non-string value is given
      back as its JSON text.
    - `timestamp`: upstream's timestamp string as sent (its offset and precision kept); for an
      older row, our column as RFC 3339 UTC.
    - `cluster`: the cluster the records belong to, as stored (the `--cluster` name when the
      operator gave one, as nightcrier's incident.json does).
    - `server_cluster`: the `cluster` value the server itself sent ("" for an in-cluster
      server), None when it sent none or the row predates this.
    - `fault_id_derived`: True when upstream sent no `faultId` and ingestion derived it.
    - `raw`: the record as sent (str: the exact text of the line for `ingest_events`, the
      notification envelope re-encoded for `subscribe_mcp`), or None when it was not kept (too
      large to keep beside the context, or a row stored before ingestion kept it).

    Never raises on a stored context that is not JSON or not an object (then only the columns
    answer). Reads attributes only: no query.
    """
    try:
        stored = load_context(fault_or_incident.context)
    except NotJSON:
        stored = None
    if not isinstance(stored, dict):
        stored = {}
    sent = stored.get(UPSTREAM_KEY)
    if not isinstance(sent, dict):
        sent = {}
    severity = sent.get("severity", sent.get("level"))
    timestamp = sent.get("timestamp")
    if not isinstance(timestamp, str):
        timestamp = fault_or_incident.timestamp.isoformat().replace("+00:00", "Z")
    context = stored.get("context", "")
    if context is None:
        context = ""
    elif not isinstance(context, str):
        context = json.dumps(context, ensure_ascii=False)
    raw = sent.get("record")
    return {
        "severity": severity if isinstance(severity, str) else fault_or_incident.severity,
        "context": context,
        "timestamp": timestamp,
        "cluster": fault_or_incident.cluster,
        "server_cluster": sent.get("cluster"),
        "fault_id_derived": sent.get("faultIdDerived") is True,
        "raw": raw if isinstance(raw, str) else None,
    }
