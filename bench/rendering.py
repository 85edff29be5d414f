"""Rendering benchmark: how long each pathological report takes to render, and what it becomes.

    DJANGO_DEBUG=1 .venv/bin/python bench/rendering.py [--repeat 3]

The cases are the hostile-input suite's (`tests/test_hostile_input.py`): there they are checked
for what they render to (plain text past the budget, nothing executable); here they are timed.
Prints, per case, its size, the best of `--repeat` render times and whether it was rendered as
markdown or as plain text. Exit status 1 when a case takes more than `--budget` seconds (2).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget", type=float, default=2.0)
    options = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
    import django

    django.setup()
    from incidents.rendering import PLAIN_TEXT_NOTE, render
    from tests.test_hostile_input import PATHOLOGICAL_MARKDOWN

    print(f"| case | bytes | render s (best of {options.repeat}) | shown as |")
    print("|---|---|---|---|")
    slow = 0
    for case, markdown in PATHOLOGICAL_MARKDOWN.items():
        times = []
        for _ in range(options.repeat):
            began = time.perf_counter()
            rendered = render(markdown)
            times.append(time.perf_counter() - began)
        shown = "plain text" if PLAIN_TEXT_NOTE in rendered.html else "markdown"
        print(f"| {case} | {len(markdown):,} | {min(times):.3f} | {shown} |")
        slow += min(times) > options.budget
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
