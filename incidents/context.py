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


def upstream_view(fault_or_incident: Any) -> dict[str, Any]:
    """Upstream's own words for a fault (or an incident's copy of it), as far as the store keeps
    them: `severity`, `context` (upstream's string, or None), `timestamp` (RFC 3339), `cluster`,
    and `raw` (the record as sent, or None when it was not kept).

    Today's store keeps upstream's context string under "context" in the stored JSON, and our
    severity and parsed timestamp only: those stand in for the words upstream sent.
    """
    try:
        stored = load_context(fault_or_incident.context)
    except NotJSON:
        stored = {}
    context = stored.get("context") if isinstance(stored, dict) else None
    if context is not None and not isinstance(context, str):
        context = json.dumps(context, ensure_ascii=False)
    timestamp = fault_or_incident.timestamp
    return {
        "severity": fault_or_incident.severity,
        "context": context,
        "timestamp": timestamp.isoformat().replace("+00:00", "Z") if timestamp else None,
        "cluster": fault_or_incident.cluster,
        "raw": None,
    }
