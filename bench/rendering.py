"""Rendering benchmark: the time bound on hostile and real reports.

    DJANGO_DEBUG=1 .venv/bin/python bench/rendering.py [--runs 3] [--parse-limit 30]

For each case it prints the text's size, the cost model's estimate (incidents.rendering:
render_cost against RENDER_COST_BUDGET), what `render()` shows (markdown, or plain text turned
away by the cost model or by the time limit), the median time of `render()` as pages and the
worker call it, and the time markdown-it-py alone takes to parse it with no bound (run in a
killable child, given up after --parse-limit seconds): the cost the bound saves.

Cases: the F3 report (issue 20: the stub agent's report on a fault whose context is "=\\n" x
45,000), the complexity cases of tests/test_hostile_input.py (PATHOLOGICAL_MARKDOWN) and of the
old guard in incidents/rendering.py, the k8s4agents report from ../shared/upstream/, a stub
report, and a long fenced log.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django  # noqa: E402

django.setup()

from incidents import rendering, stub_agent  # noqa: E402

K8S4AGENTS = ROOT.parent / "shared" / "upstream" / "report-k8s4agents.md"
STUB_INCIDENT = {
    "incidentId": "0d9c6a52-8f5e-4a8e-9a0e-2a4f0b6f6c11",
    "faultId": "f7a3b2c1d4e5f6a7",
    "cluster": "prod-eu-west-1",
    "faultType": "CrashLoop",
    "severity": "critical",
    "resource": {"kind": "Pod", "name": "checkout-api-7f8b9c", "namespace": "checkout"},
    "timestamp": "2025-12-20T15:30:00Z",
}


def cases() -> dict[str, str]:
    # The F3 report as the stub wrote it then: the event's message quoted in a blockquote. Today's
    # stub quotes a message on one line and the context in a fence (the next row).
    f3 = "# Investigation: CrashLoop of checkout/Pod/x\n\n## 2. Problem statement\n\n> " + (
        "=\n" * 45_000
    )
    log = "\n".join(f"[INFO] [pod-{i}] <GET /healthz> 200 *ok*" for i in range(20_000))
    found = {
        "F3 report (old stub), context '=\\n' x 45,000": f3,
        "today's stub report on the F3 fault": stub_agent.build_report(
            {**STUB_INCIDENT, "context": "=\n" * 45_000}
        ),
        "'=\\n' x 45,000 alone": "=\n" * 45_000,
        "'x\\n=\\n' x 45,000 (setext headings)": "x\n=\n" * 45_000,
        "'---\\n' x 45,000": "---\n" * 45_000,
        # tests/test_hostile_input.py PATHOLOGICAL_MARKDOWN, the old guard's cases:
        "50,000 open brackets": "[" * 50_000,
        "20,000 unclosed links": "[a](" * 20_000,
        "20,000 unclosed images": "![" * 20_000,
        "20,000 unclosed autolinks": "<http://" * 20_000,
        "1,000 brackets in a 1 MB paragraph": ("[" + "a" * 1000) * 1000,
        "2,000 nested list levels": "".join("  " * i + "- x\n" for i in range(2000)),
        "an unclosed fence hiding brackets": "```\n" + "[" * 50_000,
        "a fence with attributes hiding brackets": "```{a}}\n" + "[" * 50_000 + "\n```\n",
        "5,000 nested quotes": "> " * 5000 + "x <script>alert(1)</script>",
        # other shapes markdown-it-py is slow on:
        "50,000 list items": "- a\n" * 50_000,
        "a table of 20,000 rows": "|a|b|\n|-|-|\n" + "|x|y|\n" * 20_000,
        # what real reports look like:
        "stub report (CrashLoop)": stub_agent.build_report(
            {**STUB_INCIDENT, "context": {"context": "Back-off restarting failed container"}}
        ),
        "20,000-line log in a fence": f"# Findings\n\n```text\n{log}\n```\n",
    }
    if K8S4AGENTS.exists():
        found["k8s4agents report (shared/upstream)"] = K8S4AGENTS.read_text(encoding="utf-8")
    return found


def shown_as(text: str) -> str:
    if rendering.too_complex(text):
        return "text (cost model)"
    html = str(rendering.render(text).html)
    return "text (time limit)" if rendering.PLAIN_TEXT_NOTE in html[:200] else "markdown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="render() runs per case (median)")
    parser.add_argument("--parse-limit", type=float, default=30.0, help="seconds for the parse")
    args = parser.parse_args()
    print(f"budget {rendering.RENDER_COST_BUDGET:,} units, max {rendering.MAX_RENDER_CHARS:,} "
          f"chars, time limit {rendering.RENDER_TIMEOUT_SECONDS} s")  # fmt: skip
    header = (
        f"{'case':44} {'chars':>9} {'cost':>9}  {'shown as':18} {'render':>9} "
        f"{'no model':>9} {'parse':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, text in cases().items():
        timings = []
        for _ in range(args.runs):
            began = time.perf_counter()
            rendering.render(text)
            timings.append(time.perf_counter() - began)
        budget, size = rendering.RENDER_COST_BUDGET, rendering.MAX_RENDER_CHARS
        rendering.RENDER_COST_BUDGET = rendering.MAX_RENDER_CHARS = 10**12
        began = time.perf_counter()
        rendering.render(text)
        unmodelled = time.perf_counter() - began
        rendering.RENDER_COST_BUDGET, rendering.MAX_RENDER_CHARS = budget, size
        began = time.perf_counter()
        parsed = rendering.convert_bounded(text, args.parse_limit)
        parse = time.perf_counter() - began
        limit = f">{args.parse_limit:.0f}s"
        parse_text = f"{parse:8.2f}s" if parsed is not None else limit.rjust(9)
        print(
            f"{name[:44]:44} {len(text):>9,} {rendering.render_cost(text):>9,}  "
            f"{shown_as(text):18} {statistics.median(timings):8.3f}s {unmodelled:8.3f}s "
            f"{parse_text}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
