"""Markdown -> sanitized HTML. The only place in the project that marks text safe.

Agent reports are untrusted: an agent quotes container logs and cluster objects, and anyone who can
write to a pod's log can write into a report. Everything is rendered with Python-Markdown and then
cleaned with nh3 (ammonia) against an allow-list; stored HTML is cleaned again on the way out.
"""

from dataclasses import dataclass

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

MARKDOWN_EXTENSIONS = ["tables", "fenced_code", "sane_lists", "toc"]
MARKDOWN_EXTENSION_CONFIGS = {"toc": {"permalink": False, "toc_depth": "2-3"}}

_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
ALLOWED_TAGS = _HEADINGS | {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "code": {"class"},  # fenced code's language-xxx
    "div": {"class"},  # the table of contents
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
    **{heading: {"id"} for heading in _HEADINGS},  # anchors for the table of contents
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize(html: str) -> SafeString:
    """Clean HTML against the allow-list: no script, no event handler, no javascript: URL."""
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return mark_safe(cleaned)  # noqa: S308 - nh3 has just cleaned it


@dataclass(frozen=True)
class RenderedMarkdown:
    html: SafeString
    toc: SafeString  # a nested <ul> of the report's headings; empty when it has none


def render(text: str) -> RenderedMarkdown:
    """Render markdown (tables, fenced code, heading anchors) to sanitized HTML and its TOC."""
    converter = markdown.Markdown(
        extensions=MARKDOWN_EXTENSIONS,
        extension_configs=MARKDOWN_EXTENSION_CONFIGS,
        output_format="html",
    )
    html = converter.convert(text or "")
    toc = converter.toc if getattr(converter, "toc_tokens", None) else ""
    return RenderedMarkdown(html=sanitize(html), toc=sanitize(toc))


def render_markdown(text: str) -> str:
    """The sanitized HTML of `text`, as stored in `TriageReport.report_html`."""
    return str(render(text).html)
