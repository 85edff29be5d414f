"""Markdown -> sanitized HTML. The only place in the project that marks text safe.

Agent reports are untrusted: an agent quotes container logs and cluster objects, and anyone who can
write to a pod's log can write into a report. Reports are rendered as CommonMark (markdown-it-py,
with GFM tables, strikethrough and task lists) and then cleaned with nh3 (ammonia) against an
allow-list; stored HTML is cleaned again on the way out.

Why markdown-it-py and not Python-Markdown: real agents write the k8s4agents template, whose
lists start right under a paragraph line and nest by 2 spaces. Python-Markdown needs a blank
line before a list and 4-space nesting; its extensions for that are unmaintained and each gets
half-way (mdx-breakless-lists inserts blank lines inside fenced code; mdx-truly-sane-lists takes
one fixed nesting width, so 2-space and 4-space nesting cannot both work). markdown-it-py is a
CommonMark implementation, which is what the agents write for.

Report HTML lives inside the app's pages, so it keeps no name of ours: every id is prefixed
`md-` (and in-report `#anchor` links with it), classes are dropped except the few the renderer
sets itself (code languages, task lists), which are prefixed `md-` too; links that leave the
site get the `md-external` class, which the stylesheet marks visibly.

Rendering has a time bound wherever it runs (see `render`): a cost model turns away input
known to be slow before any parsing, and the parse itself runs in a forked child that is
killed at RENDER_TIMEOUT_SECONDS. Either way the report is shown as escaped plain text.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import signal
import time
from dataclasses import dataclass
from functools import lru_cache

import nh3
from django.core.cache import cache
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.tasklists import tasklists_plugin

PREFIX = "md-"  # ids and classes of report content; the app itself never uses names with it

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
    "ul": {"class"},  # task lists
    "li": {"class"},
    "span": {"class"},  # a task's checkbox, until the end of sanitize()
    "ol": {"start"},
    **{heading: {"id"} for heading in _HEADINGS},  # anchors for the table of contents
}
# A task's checkbox: the task-list plugin's <input>, which nh3 never sees (no <input> a report
# writes gets through): it is a marker <span> through nh3, and a disabled checkbox after.
_CHECKBOXES = tuple(
    (
        f'<input class="task-list-item-checkbox" {plugin}disabled="disabled" type="checkbox">',
        f'<span class="task-box{suffix}"></span>',
        f'<span class="{PREFIX}task-box{suffix}"></span>',
        f'<input class="{PREFIX}task-box" type="checkbox" {ours}disabled>',
    )
    for plugin, suffix, ours in (("", "", ""), ('checked="checked" ', "-checked", "checked "))
)
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}
# The classes the renderer sets: fenced code's language, the task lists' (and checkbox markers).
_RENDERER_CLASS = re.compile(
    r"(?:md-)?(language-[\w+#.-]{1,40}|contains-task-list|task-list-item|task-box(?:-checked)?)"
)
# Absolute URLs, and the forms browsers read as host-relative (`//host`, `/\host`, `\\host`).
_LEAVES_SITE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:|[/\\]{2})", re.IGNORECASE)
# A start tag <a ...> as nh3 writes it: attribute values double-quoted, `"` escaped inside.
_LINK_TAG = re.compile(r'<a((?:\s+[^\s"\'>/=]+(?:="[^"]*")?)*)\s*>')
_HREF = re.compile(r'\shref="([^"]*)"')


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "class":
        kept = [
            PREFIX + match.group(1)
            for name in value.split()
            if (match := _RENDERER_CLASS.fullmatch(name))
        ]
        return " ".join(kept) or None
    if attribute == "href" and value.startswith("#") and not value.startswith(f"#{PREFIX}"):
        return f"#{PREFIX}{value[1:]}"  # in-report anchors follow the prefixed ids
    return value


def _mark_external(match: re.Match) -> str:
    attributes = match.group(1)
    href = _HREF.search(attributes)
    if href is None or not _LEAVES_SITE.match(href.group(1)):
        return match.group(0)
    return f'<a{attributes} class="{PREFIX}external">'


def sanitize(html: str) -> SafeString:
    """Clean HTML against the allow-list: no script, no event handler, no javascript: URL, no
    id or class of the app's (ids prefixed, classes dropped or prefixed), external links marked.
    Idempotent: stored HTML that was cleaned once comes out the same."""
    for _plugin, _marker, prefixed_marker, checkbox in _CHECKBOXES:  # stored HTML has them
        html = html.replace(checkbox, prefixed_marker)
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        id_prefix=PREFIX,
        attribute_filter=_filter_attribute,
    )
    marked = _LINK_TAG.sub(_mark_external, cleaned)
    for _plugin, _marker, prefixed_marker, checkbox in _CHECKBOXES:
        marked = marked.replace(prefixed_marker, checkbox)
    # nh3 has just cleaned it; only a class and disabled checkboxes of ours were added.
    return mark_safe(marked)  # noqa: S308


@dataclass(frozen=True)
class RenderedMarkdown:
    html: SafeString
    toc: SafeString  # a nested <ul> of the report's headings; empty when it has none


# --- the renderer ----------------------------------------------------------------------------
class _EveryLinkParser(MarkdownIt):
    # One allow-list decides which URLs stay: nh3's, after rendering (a `javascript:` link is
    # then a link without href, as for raw HTML, rather than markdown shown as text).
    def validateLink(self, url: str) -> bool:  # noqa: N802 - markdown-it's name
        return True


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # maxNesting bounds the recursion of nested lists and quotes (deeper is shown as text).
    parser = _EveryLinkParser("commonmark", {"html": True, "maxNesting": 20})
    return parser.enable(["table", "strikethrough"]).use(tasklists_plugin)


def _heading_text(inline: Token) -> str:
    return "".join(
        child.content for child in inline.children or () if child.type in ("text", "code_inline")
    ).strip()


def _anchor_headings(tokens: list[Token]) -> list[tuple[int, str, str]]:
    """Give every heading a unique id (a slug of its text); (level, id, text) of each.

    Deduplicated with a counter per slug, not by probing suffixes: linear in the headings."""
    seen: dict[str, int] = {}
    headings = []
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = _heading_text(tokens[index + 1])
        base = slugify(text) or "section"
        anchor = base
        while anchor in seen:
            seen[base] += 1
            anchor = f"{base}-{seen[base]}"
        seen[anchor] = 0
        token.attrSet("id", anchor)
        headings.append((int(token.tag[1]), anchor, text))
    return headings


TOC_LEVELS = (2, 3)


def _toc(headings: list[tuple[int, str, str]]) -> str:
    """A nested list of the level-2 and level-3 headings, linking to their anchors."""
    parts, depth = [], 0
    for level, anchor, text in headings:
        if level not in TOC_LEVELS:
            continue
        want = TOC_LEVELS.index(level) + 1
        if want > depth:
            parts.append("<ul><li>" * (want - depth))
        else:
            parts.append("</li></ul>" * (depth - want) + "</li><li>")
        depth = want
        parts.append(f'<a href="#{escape(anchor)}">{escape(text)}</a>')
    parts.append("</li></ul>" * depth)
    return "".join(parts)


def convert(text: str) -> tuple[str, str]:
    """(HTML, table of contents) of markdown `text`, unsanitized and without any bound."""
    parser = _parser()
    env: dict = {}
    tokens = parser.parse(text, env)
    toc = _toc(_anchor_headings(tokens))
    html = parser.renderer.render(tokens, parser.options, env)
    for plugin, marker, _prefixed, _checkbox in _CHECKBOXES:
        html = html.replace(plugin, marker)
    return html, toc


# --- the time bound --------------------------------------------------------------------------
# markdown-it-py is close to linear, but slow per unit (tens of microseconds a line, more for a
# list item, a table row or a run of brackets), and a few shapes are worse: 45,000 "=" lines (a
# setext heading underline each) took 89 s with an anchors plugin that probes slugs. Two bounds:
#
# 1. A cost model, before any parsing: size, and a count of the units the parser works through
#    outside fenced code (lines; list items, quotes, headings and table rows again; markup
#    characters). Past the budget (about a second of parsing on a loaded 2-core machine, see
#    bench/rendering.py) the report is text, at once and on every view.
# 2. A hard limit for whatever the model misses: the parse runs in a forked child (the parent's
#    code and imports are already there, so this costs a few milliseconds) that is killed at
#    RENDER_TIMEOUT_SECONDS. A thread cannot be stopped in Python; a process can.
MAX_RENDER_CHARS = 2 * 1024 * 1024  # the worker accepts reports up to 2 MiB
RENDER_COST_BUDGET = 40_000
RENDER_TIMEOUT_SECONDS = 2.0
PLAIN_TEXT_NOTE = "This report is shown as plain text: it is too complex to render as markdown."

_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_STRUCTURAL_LINE = re.compile(r"^[ \t]*(?:[-+*>#|=]|\d{1,9}[.)])")
_MARKUP = re.compile(r"[\[\]()<>*_`!&\\|]")


def render_cost(text: str) -> int:
    """The cost model's estimate of parsing work for `text`, in units (see above).

    Fenced code is skipped: its lines are copied, not parsed (an unclosed fence runs to the
    end, as in CommonMark). Linear in the text; regular expressions without backtracking."""
    cost, fence = 0, ""
    for line in text.split("\n"):
        if fence:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = ""
            continue
        opening = _FENCE_OPEN.match(line)
        if opening:
            fence = opening.group(1)
            continue
        if line.strip():
            cost += 1 + 2 * bool(_STRUCTURAL_LINE.match(line)) + len(_MARKUP.findall(line))
    return cost


def too_complex(text: str) -> bool:
    """Whether the cost model turns `text` away: too long, or more work than the budget."""
    return len(text) > MAX_RENDER_CHARS or render_cost(text) > RENDER_COST_BUDGET


def _child(text: str, read_fd: int, write_fd: int) -> None:
    """In the forked child: convert, send JSON down the pipe, exit without running any of the
    parent's clean-up (its database connections and threads are the parent's)."""
    status = 1
    try:
        os.close(read_fd)
        try:
            result = convert(text)
        except RecursionError:
            result = None
        data = memoryview(json.dumps(result).encode())
        while data:
            data = data[os.write(write_fd, data) :]
        status = 0
    finally:
        os._exit(status)


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes, or None when the deadline comes first."""
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int) -> None:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:  # reaped already by a SIGCHLD handler or subreaper of the caller
        pass


def convert_bounded(text: str, timeout: float) -> tuple[str, str] | None:
    """convert(), killed after `timeout` seconds: None then, or when it could not finish or
    start (no process or file descriptor to spare)."""
    if not hasattr(os, "fork"):  # no fork (Windows): the cost model is the only bound
        return convert(text)
    _parser()  # built once in the parent, so every child starts with it
    try:
        read_fd, write_fd = os.pipe()
    except OSError:  # out of file descriptors: no unbounded render instead
        return None
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory: likewise
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:
        _child(text, read_fd, write_fd)
    os.close(write_fd)
    try:
        payload = _read_until(read_fd, time.monotonic() + timeout)
    finally:
        os.close(read_fd)
        _reap(pid)
    try:
        result = json.loads(payload) if payload else None
    except ValueError:
        return None
    return (result[0], result[1]) if isinstance(result, list) else None


def _plain(text: str) -> RenderedMarkdown:
    html = f"<p><em>{escape(PLAIN_TEXT_NOTE)}</em></p><pre>{escape(text)}</pre>"
    return RenderedMarkdown(html=sanitize(html), toc=sanitize(""))


def render(text: str) -> RenderedMarkdown:
    """Render markdown (CommonMark, tables, task lists, heading anchors) to sanitized HTML and
    its table of contents, within RENDER_TIMEOUT_SECONDS.

    A report the cost model turns away, or whose rendering runs out of time, is shown as
    escaped plain text under PLAIN_TEXT_NOTE."""
    text = (text or "").replace("\r\n", "\n")
    if not text.strip():
        return RenderedMarkdown(html=sanitize(""), toc=sanitize(""))
    if too_complex(text):
        return _plain(text)
    result = convert_bounded(text, RENDER_TIMEOUT_SECONDS)
    if result is None:
        return _plain(text)
    html, toc = result
    return RenderedMarkdown(html=sanitize(html), toc=sanitize(toc))


RENDER_CACHE_SECONDS = 60 * 60


def render_cached(text: str) -> RenderedMarkdown:
    """render(), remembered for an hour by the text's digest: pages show the same report to
    every viewer, and an edit changes the digest, so nothing stale is ever served. A report
    shown as text because it ran out of time is remembered too: no view waits twice."""
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
