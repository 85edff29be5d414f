"""Markdown -> sanitized HTML. The only place in the project that marks text safe.

Agent reports are untrusted: an agent quotes container logs and cluster objects, and anyone who can
write to a pod's log can write into a report. Everything is rendered with Python-Markdown and then
cleaned with nh3 (ammonia) against an allow-list; stored HTML is cleaned again on the way out.
"""

import hashlib
import re
from dataclasses import dataclass

import markdown
import nh3
from django.core.cache import cache
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions.fenced_code import FencedBlockPreprocessor

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


# Python-Markdown's link, image and autolink patterns scan from every "[" and "<" to the end of
# the paragraph: quadratic. A report quoting an attacker's log outside code fences can hold a
# long paragraph full of them (1,000 "[" in a 1 MB paragraph took 80 s; 50,000 "[" alone,
# 220 s), and deeply nested lists exhaust the stack after seconds. Past this budget (brackets
# times paragraph length: about a second of rendering), or that deep, a report is plain text.
INLINE_SCAN_BUDGET = 10_000_000
MAX_INDENT = 256  # leading spaces: 64 levels of nested lists
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_INDENT = re.compile(rf"^ {{{MAX_INDENT}}}", re.MULTILINE)
PLAIN_TEXT_NOTE = "This report is shown as plain text: it is too complex to render as markdown."


def _without_fences(match: re.Match) -> str:
    # A fence with {attrs} may be refused by the extension (then its text is a paragraph).
    return "\n\n" if match.group("attrs") is None else match.group(0)


def too_complex(text: str) -> bool:
    """Whether rendering `text` could take more than about a second or overflow the stack.

    An upper bound on the quadratic inline work: for each paragraph outside fenced code (found
    with the fenced_code extension's own pattern), its count of "[" and "<" times its length.
    """
    if _INDENT.search(text.expandtabs(4)):  # tabs count as Python-Markdown counts them
        return True
    outside = FencedBlockPreprocessor.FENCED_BLOCK_RE.sub(_without_fences, text)
    cost = 0
    for paragraph in _BLANK_LINE.split(outside):
        cost += (paragraph.count("[") + paragraph.count("<")) * len(paragraph)
        if cost > INLINE_SCAN_BUDGET:
            return True
    return False


def _plain(text: str) -> RenderedMarkdown:
    html = f"<p><em>{escape(PLAIN_TEXT_NOTE)}</em></p><pre>{escape(text)}</pre>"
    return RenderedMarkdown(html=sanitize(html), toc=sanitize(""))


def render(text: str) -> RenderedMarkdown:
    """Render markdown (tables, fenced code, heading anchors) to sanitized HTML and its TOC.

    A report too complex to render quickly (see `too_complex`) is shown as escaped plain text.
    """
    text = (text or "").replace("\r\n", "\n")
    if too_complex(text):
        return _plain(text)
    converter = markdown.Markdown(
        extensions=MARKDOWN_EXTENSIONS,
        extension_configs=MARKDOWN_EXTENSION_CONFIGS,
        output_format="html",
    )
    try:
        html = converter.convert(text)
    except RecursionError:  # nesting the bounds above did not catch (blockquotes, HTML…)
        return _plain(text)
    # The toc extension sets `toc` on the converter; the stubs cannot know it.
    toc = converter.toc if getattr(converter, "toc_tokens", None) else ""  # type: ignore[attr-defined]
    return RenderedMarkdown(html=sanitize(html), toc=sanitize(toc))


RENDER_CACHE_SECONDS = 60 * 60


def render_cached(text: str) -> RenderedMarkdown:
    """render(), remembered for an hour by the text's digest: pages show the same report to
    every viewer, and an edit changes the digest, so nothing stale is ever served."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    key = f"rendered-markdown:{digest}"
    rendered = cache.get(key)
    if rendered is None:
        rendered = render(text)
        cache.set(key, rendered, RENDER_CACHE_SECONDS)
    return rendered


def render_markdown(text: str) -> str:
    """The sanitized HTML of `text`, as stored in `TriageReport.report_html`."""
    return str(render(text).html)
