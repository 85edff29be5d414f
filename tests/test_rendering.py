"""Markdown -> sanitized HTML: features kept, hostile content inert, report names namespaced,
rendering bounded in time."""

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from incidents import rendering
from incidents.rendering import PLAIN_TEXT_NOTE, render, render_markdown, sanitize, too_complex
from tests.builders import REPORT_MARKDOWN, make_incident, make_report

K8S4AGENTS_REPORT = Path(settings.BASE_DIR).parent / "shared" / "upstream" / "report-k8s4agents.md"


class Outline(HTMLParser):
    """The lists of an HTML fragment: how many, how deep, their items' text, and checkboxes."""

    def __init__(self):
        super().__init__()
        self.lists = self.nested = 0
        self.depth = 0
        self.items: list[list[str]] = []  # text of each open <li>
        self.item_texts: list[str] = []
        self.checkboxes: list[dict] = []
        self.paragraphs: list[str] = []
        self.in_p = False
        self.tags: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag in ("ul", "ol"):
            self.lists += 1
            self.nested += self.depth > 0
            self.depth += 1
        elif tag == "li":
            self.items.append([])
        elif tag == "input":
            self.checkboxes.append(dict(attrs))
        elif tag == "p":
            self.in_p, self.paragraphs = True, [*self.paragraphs, ""]

    def handle_endtag(self, tag):
        if tag in ("ul", "ol"):
            self.depth -= 1
        elif tag == "li":
            self.item_texts.append(" ".join("".join(self.items.pop()).split()))
        elif tag == "p":
            self.in_p = False

    def handle_data(self, data):
        if self.items:
            self.items[-1].append(data)
        if self.in_p:
            self.paragraphs[-1] += data


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


LIST_ITEM = re.compile(r"^( *)(?:[-*+]|\d+[.)]) (.*)$")


def source_lists(markdown: str) -> tuple[int, int, list[str]]:
    """(lists, nested lists, item texts) counted from the markdown source itself: a list starts
    at an item line that follows no item line, or one indented deeper than the item above."""
    lists = nested = 0
    indents: list[int] = []
    items = []
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = LIST_ITEM.match(line)
        if in_fence or not match:
            if line.strip() and not line.startswith(" "):
                indents = []  # a paragraph, heading or table at the margin ends every list
            continue
        indent = len(match.group(1))
        while indents and indents[-1] > indent:
            indents.pop()
        if not indents or indents[-1] < indent:
            lists += 1
            nested += bool(indents)
            indents.append(indent)
        items.append(match.group(2))
    return lists, nested, items


def plain_text(markdown_inline: str) -> str:
    text = re.sub(r"\*\*|`", "", markdown_inline)
    return " ".join(re.sub(r"^\[[ xX]\] ", "", text).split())


# -- the report the real agents write -------------------------------------------------------------
def test_every_list_of_the_k8s4agents_report_renders_as_a_list_nested_where_nested():
    markdown = K8S4AGENTS_REPORT.read_text(encoding="utf-8")
    lists, nested, items = source_lists(markdown)
    assert (lists, nested) == (14, 2)  # the template's lists, counted from its source
    page = outline(render_markdown(markdown))
    assert (page.lists, page.nested) == (lists, nested)
    rendered_items = set(page.item_texts)
    for item in items:
        assert any(text.startswith(plain_text(item)) for text in rendered_items), item
    for paragraph in page.paragraphs:  # no list left behind as a paragraph of "- " lines
        assert not re.search(r"(^|\n)\s*([-*+]|\d+\.) ", paragraph), paragraph


def test_the_k8s4agents_task_lists_are_disabled_checkboxes():
    markdown = K8S4AGENTS_REPORT.read_text(encoding="utf-8")
    page = outline(render_markdown(markdown))
    assert len(page.checkboxes) == len(re.findall(r"^\s*- \[[ xX]\] ", markdown, re.M))
    assert all(box["type"] == "checkbox" and "disabled" in box for box in page.checkboxes)
    checked = [box for box in page.checkboxes if "checked" in box]
    assert len(checked) == len(re.findall(r"^\s*- \[[xX]\] ", markdown, re.M)) > 0


def test_the_k8s4agents_tables_details_fences_and_rules_render():
    markdown = K8S4AGENTS_REPORT.read_text(encoding="utf-8")
    rendered = render(markdown)
    page = outline(str(rendered.html))
    assert page.tags["table"] == len(re.findall(r"^\|[-| ]+\|$", markdown, re.M))
    assert page.tags["details"] == page.tags["summary"] == markdown.count("<details>")
    assert page.tags["pre"] == markdown.count("```") // 2
    assert page.tags["hr"] == len(re.findall(r"^---$", markdown, re.M))
    assert "FATAL DATABASE_URL not set &lt;nil&gt; &amp; exiting" in rendered.html
    assert "<strong>[FACT-1]</strong>" in rendered.html
    assert 'href="#md-0-executive-triage-card"' in rendered.toc


@pytest.mark.parametrize(
    ("markdown", "nested"),
    [("- a\n  - b\n", True), ("- a\n    - b\n", True), ("1. a\n   - b\n", True)],
    ids=["2 spaces", "4 spaces", "under an ordered item"],
)
def test_nesting_follows_commonmark_whatever_the_indent(markdown, nested):
    page = outline(render_markdown(markdown))
    assert (page.lists, page.nested) == (2, 1)


def test_a_fence_keeps_its_dash_lines_as_they_are():
    html = render_markdown("Config:\n```yaml\nitems:\n- a\n- b\n```\n")
    assert "items:\n- a\n- b\n</code>" in html and "<li>" not in html


# -- features and sanitizing ----------------------------------------------------------------------
def test_tables_fenced_code_and_heading_anchors():
    rendered = render(REPORT_MARKDOWN)
    html = str(rendered.html)
    assert "<table>" in html and "<th>" in html
    assert '<code class="md-language-text">' in html
    assert '<h2 id="md-executive-triage-card">' in html
    assert 'href="#md-executive-triage-card"' in str(rendered.toc)


def test_repeated_headings_get_distinct_anchors_and_the_toc_links_each():
    rendered = render("## Logs\n\n### Pod\n\n## Logs\n\n### Pod\n")
    ids = re.findall(r'id="([^"]+)"', str(rendered.html))
    assert ids == ["md-logs", "md-pod", "md-logs-1", "md-pod-1"]
    assert re.findall(r'href="#([^"]+)"', str(rendered.toc)) == ids


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<iframe src="https://evil.example"></iframe>',
        '<svg onload="alert(1)"></svg>',
        '<div style="background:url(javascript:alert(1))">x</div>',
        '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
        "<object data=x></object><embed src=x>",
        '<form action="https://evil.example"><input name=x></form>',
        '<input type="text" name="password" placeholder="Password">',
    ],
)
def test_hostile_markdown_is_inert(hostile):
    html = render_markdown(f"# Report\n\n{hostile}\n").lower()
    for forbidden in ("<script", "onerror", "onload", "javascript:", "<iframe", "style=",
                      "data:text", "<object", "<embed", "<form", "<input"):  # fmt: skip
        assert forbidden not in html


def test_stored_html_is_cleaned_again():
    cleaned = str(sanitize('<p onclick="x()">hi</p><script>alert(1)</script>'))
    assert cleaned == "<p>hi</p>"


def test_sanitizing_rendered_html_again_changes_nothing():
    html = render_markdown(K8S4AGENTS_REPORT.read_text(encoding="utf-8") + "\n[x](https://a.io)")
    assert str(sanitize(html)) == html


def test_links_get_rel_noopener():
    html = render_markdown("[docs](https://kubernetes.io)")
    assert 'rel="noopener noreferrer nofollow"' in html


def test_empty_report_renders_empty():
    rendered = render("")
    assert str(rendered.html) == "" and str(rendered.toc) == ""


def test_render_cached_gives_the_same_safe_html_and_renders_once(monkeypatch):
    from django.utils.safestring import SafeString

    calls = []
    real_render = rendering.render
    monkeypatch.setattr(rendering, "render", lambda text: calls.append(text) or real_render(text))
    first = rendering.render_cached("# Title\n\n<script>x</script>")
    second = rendering.render_cached("# Title\n\n<script>x</script>")
    assert first == second and isinstance(second.html, SafeString)
    assert "<script" not in str(second.html)
    assert len(calls) == 1
    rendering.render_cached("# Edited")  # another text, another entry
    assert len(calls) == 2


# -- F13: report HTML keeps no name of the app's; external links are marked ------------------------
SPOOF = (
    "# Findings\n\n"
    '<div class="alert alert--error">Your session expired: '
    '<a href="https://evil.example/login">sign in again</a></div>\n\n'
    '<h1 id="main" class="page-head">Hijacked</h1>\n\n'
    "See [the runbook](/incidents/) and [the docs](https://kubernetes.io/docs/), "
    "[mail](mailto:sre@example.com), [sneaky](//evil.example) and [back](#findings).\n"
)


def test_a_report_cannot_pose_as_the_apps_error_banner_or_steal_its_ids(admin_client):
    report = make_report(make_incident(status="resolved"), report_markdown=SPOOF)
    html = admin_client.get(report.get_absolute_url()).content.decode()
    opening = '<article class="prose report-body">'
    article = html[html.index(opening) + len(opening) :]
    article = article[: article.index("</article>")]
    assert "alert" not in article and "page-head" not in article
    assert re.findall(r'\bid="main"', html) == ['id="main"']  # the app's <main>, only once
    assert 'id="md-main"' in article and 'href="#main"' in html  # the skip link still lands
    for classes in re.findall(r'class="([^"]*)"', article):
        assert all(name.startswith("md-") for name in classes.split()), classes
    for anchor in re.findall(r'\bid="([^"]*)"', article):
        assert anchor.startswith("md-")


def test_links_that_leave_the_site_are_marked_and_in_report_anchors_still_land():
    rendered = render(SPOOF)
    html = str(rendered.html)
    links = dict(re.findall(r'<a href="([^"]*)"[^>]*?(?: class="([^"]*)")?>', html))
    assert links["https://evil.example/login"] == "md-external"
    assert links["https://kubernetes.io/docs/"] == "md-external"
    assert links["mailto:sre@example.com"] == "md-external"
    assert links["//evil.example"] == "md-external"
    assert links["/incidents/"] == "" and links["#md-findings"] == ""
    ids = set(re.findall(r'\bid="([^"]*)"', html))
    for target in re.findall(r'href="#([^"]*)"', html + str(rendered.toc)):
        assert target in ids  # every in-report link and TOC entry has its heading


@pytest.mark.parametrize("stylesheet", ["app.css", "report-admin.css"])
def test_the_stylesheets_mark_external_links_visibly(stylesheet):
    css = (Path(settings.BASE_DIR) / "static" / "incidents" / stylesheet).read_text()
    rule = re.search(r"a\.md-external::after\s*\{([^}]*)\}", css)
    assert rule and re.search(r'content: "[^"]*external"', rule.group(1))


def test_the_admin_preview_loads_the_report_marks(admin_client):
    report = make_report(make_incident(), report_markdown=SPOOF)
    html = admin_client.get(reverse("admin:incidents_triagereport_change", args=[report.pk]))
    page = html.content.decode()
    assert "incidents/report-admin.css" in page
    assert 'class="md-external">sign in again</a>' in page


# -- F3: a hard time bound wherever rendering runs -----------------------------------------------
F3_CONTEXT = "=\n" * 45_000  # 135 KB of setext underlines: held the worker 42 s


def f3_report() -> str:
    """The F3 report as the stub wrote it then: the event's message quoted in a blockquote."""
    return "# Investigation: CrashLoop of a/Pod/b\n\n## 2. Problem statement\n\n> " + F3_CONTEXT


def test_todays_stub_keeps_the_f3_context_out_of_the_markdown_structure():
    from incidents import stub_agent

    report = stub_agent.build_report({"faultType": "CrashLoop", "context": F3_CONTEXT})
    assert rendering.render_cost(report) < rendering.RENDER_COST_BUDGET // 20
    assert PLAIN_TEXT_NOTE not in render(report).html


def test_the_f3_report_and_the_known_slow_shapes_are_turned_away_by_the_cost_model():
    slow = [
        f3_report(),
        "x\n=\n" * 45_000,
        "---\n" * 45_000,
        "[" * 50_000,
        "[a](" * 20_000,
        "- a\n" * 50_000,
        "|a|b|\n|-|-|\n" + "|x|y|\n" * 20_000,
        "*a" * 50_000,
        "x" * (rendering.MAX_RENDER_CHARS + 1),
    ]
    for text in slow:
        assert too_complex(text), text[:40]
        assert str(render(text).html).startswith(f"<p><em>{PLAIN_TEXT_NOTE}</em></p><pre>")


def test_long_fenced_logs_and_real_reports_are_within_the_budget():
    log = "\n".join(f"[INFO] [pod-{i}] <GET /healthz> 200 *ok*" for i in range(20_000))
    assert not too_complex(f"# Findings\n\n```text\n{log}\n```\n\nSee [the runbook](https://x.io).")
    assert not too_complex(K8S4AGENTS_REPORT.read_text(encoding="utf-8"))


def _stuck(text):
    Path(os.environ["RENDER_PID_FILE"]).write_text(str(os.getpid()))
    while True:
        pass  # a parse that never ends, as the cost model might one day miss


def test_a_render_past_the_time_limit_is_killed_and_shown_as_text(monkeypatch, tmp_path):
    monkeypatch.setenv("RENDER_PID_FILE", str(tmp_path / "pid"))
    monkeypatch.setattr(rendering, "convert", _stuck)
    monkeypatch.setattr(rendering, "RENDER_TIMEOUT_SECONDS", 0.5)
    rendered = render("# Report\n\n<script>alert(1)</script>")
    assert str(rendered.html).startswith(f"<p><em>{PLAIN_TEXT_NOTE}</em></p><pre>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html and rendered.toc == ""
    child = int((tmp_path / "pid").read_text())
    assert child != os.getpid()
    with pytest.raises(ProcessLookupError):  # killed and reaped: no orphan, no zombie
        os.kill(child, 0)


@pytest.mark.parametrize(
    "failure",
    [RecursionError("deep"), MemoryError(), SystemExit(3)],
    ids=["recursion", "memory", "exit"],
)
def test_a_render_that_fails_in_its_child_is_shown_as_text(monkeypatch, failure):
    def fail(text):
        raise failure

    monkeypatch.setattr(rendering, "convert", fail)
    rendered = render("# Report\n\nbody")
    assert str(rendered.html).startswith(f"<p><em>{PLAIN_TEXT_NOTE}</em></p>")


def test_every_page_and_the_worker_show_the_f3_report_as_text(admin_client):
    from incidents.store import DjangoStateStore

    markdown = f3_report()
    report = make_report(make_incident(status="resolved"), report_markdown=markdown)
    DjangoStateStore().record_triage_report(report)  # the worker's path: renders report_html
    report.refresh_from_db()
    assert report.report_html.startswith(f"<p><em>{PLAIN_TEXT_NOTE}</em></p><pre>")
    pages = [
        report.get_absolute_url(),
        report.incident.get_absolute_url(),
        reverse("admin:incidents_triagereport_change", args=[report.pk]),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200
        assert PLAIN_TEXT_NOTE in response.content.decode(), url


def test_no_process_to_spare_means_text_not_an_unbounded_render(monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(rendering.os, "fork", no_fork)
    rendered = render("# Report\n\n- a\n- b\n")
    assert str(rendered.html).startswith(f"<p><em>{PLAIN_TEXT_NOTE}</em></p>")
