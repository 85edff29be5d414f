"""Fault context (upstream JSON text) shown readably and safely on admin pages."""

import json

from django.utils.html import format_html

from incidents.context import NotJSON, load_context, printable

# A context carries container log samples; beyond this the page shows a cut and says so.
CONTEXT_DISPLAY_LIMIT = 64 * 1024


def pretty_context(text: str) -> str:
    """The context as indented JSON in a <pre> block, escaped; raw text if it is not JSON."""
    if not text:
        return "(none)"
    try:
        shown = json.dumps(load_context(text), indent=2, ensure_ascii=False, sort_keys=True)
    except NotJSON:
        shown = text
    shown = printable(shown)
    note = ""
    if len(shown) > CONTEXT_DISPLAY_LIMIT:
        note = f"… cut at {CONTEXT_DISPLAY_LIMIT:,} of {len(shown):,} characters"
        shown = shown[:CONTEXT_DISPLAY_LIMIT]
    return format_html("<pre>{}</pre>{}", shown, note)
