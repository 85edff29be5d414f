"""Markdown -> sanitized HTML: features kept, hostile content inert."""

import pytest

from incidents.rendering import render, render_markdown, sanitize
from tests.builders import REPORT_MARKDOWN


def test_tables_fenced_code_and_heading_anchors():
    rendered = render(REPORT_MARKDOWN)
    html = str(rendered.html)
    assert "<table>" in html and "<th>" in html
    assert '<code class="language-text">' in html
    assert '<h2 id="executive-triage-card">' in html
    assert 'href="#executive-triage-card"' in str(rendered.toc)


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


def test_links_get_rel_noopener():
    html = render_markdown("[docs](https://kubernetes.io)")
    assert 'rel="noopener noreferrer nofollow"' in html


def test_empty_report_renders_empty():
    rendered = render("")
    assert str(rendered.html) == "" and str(rendered.toc) == ""


def test_render_cached_gives_the_same_safe_html_and_renders_once(monkeypatch):
    from django.utils.safestring import SafeString

    from incidents import rendering

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
