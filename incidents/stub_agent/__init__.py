"""The shipped stand-in agent: `python -m incidents.stub_agent` (the default agent command).

It reads the incident the worker wrote (`$TRIAGE_INCIDENT_FILE`, else `./incident.json`) and
writes `$TRIAGE_OUTPUT_DIR/investigation.md` (else `./output/`): a report in the form real
agents write (the k8s4agents template: executive triage card, problem statement, findings with
FACT/INF labels, root cause with ranked hypotheses, remediation, proof of work, supporting
evidence; see report.py), built from a playbook per fault type and the incident's own names,
cluster, context and log samples. It has no cluster access, and its first line says that it is
a synthetic demo report; it is there so the pipeline and the dashboard show real-looking results
without a real agent. Standard library only; it never imports Django.

So that a demo shows every status, a small share of incidents, chosen deterministically from
the fault id and timestamp (the same sample data gives the same outcomes on every run), ends
otherwise (see OUTCOME_SHARES): the agent exits 3 after a partial report, exits 2 with none,
exits 0 without a report, or writes a report too small to be accepted.

Beside the report it writes `output/result.json` as a real agent would (agent, model, token
usage, tool calls, and a cost derived from the tokens at the model's list prices): the numbers
are made up from the incident's size, deterministically, so the dashboard shows realistic spend.

Environment:
    TRIAGE_STUB_MODEL     the model to name in result.json (default: chosen per incident)
    TRIAGE_STUB_OUTCOME   force an outcome: resolved, partial, crash, missing, small
    TRIAGE_STUB_DELAY     seconds to pretend to investigate (default 0)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from incidents.stub_agent.report import SYNTHETIC_NOTE, build_report

__all__ = ["OUTCOMES", "OUTCOME_SHARES", "SYNTHETIC_NOTE", "build_report", "main", "outcome_for"]

# outcome -> percent of incidents; the rest are resolved.
OUTCOME_SHARES = {"partial": 4, "crash": 4, "missing": 3, "small": 2}
OUTCOMES = ("resolved", *OUTCOME_SHARES)


def outcome_for(incident: dict[str, Any]) -> str:
    """The deterministic outcome for this incident (TRIAGE_STUB_OUTCOME overrides it)."""
    forced = os.environ.get("TRIAGE_STUB_OUTCOME", "").strip().lower()
    if forced:
        if forced not in OUTCOMES:
            raise ValueError(f"TRIAGE_STUB_OUTCOME must be one of {', '.join(OUTCOMES)}")
        return forced
    seed = f"{incident.get('faultId', '')}|{incident.get('timestamp', '')}"
    if seed == "|":
        seed = str(incident.get("incidentId", ""))
    bucket = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) % 100
    threshold = 0
    for outcome, share in OUTCOME_SHARES.items():
        threshold += share
        if bucket < threshold:
            return outcome
    return "resolved"


# USD per million tokens: (input, output, cache read), the vendors' list prices.
MODEL_PRICES = {
    "claude-sonnet-4-5": (3.0, 15.0, 0.30),
    "claude-haiku-4-5": (1.0, 5.0, 0.10),
    "gpt-5": (1.25, 10.0, 0.125),
}


def run_result(incident: dict[str, Any], report: str, *, model: str = "") -> dict[str, Any]:
    """result.json for a run that wrote `report`: tokens grow with the incident's context and
    the report, a cached system prompt is read on every turn, one turn per tool call."""
    digest = hashlib.sha256(str(incident.get("incidentId", "")).encode()).digest()
    model = model or os.environ.get("TRIAGE_STUB_MODEL", "").strip()
    if not model:
        model = sorted(MODEL_PRICES)[digest[0] % len(MODEL_PRICES)]
    tool_calls = 4 + digest[1] % 12
    context_tokens = len(json.dumps(incident.get("context"), ensure_ascii=False)) // 4
    input_tokens = 2_500 + context_tokens + tool_calls * (900 + digest[2] * 4)
    output_tokens = len(report) // 4 + tool_calls * 60
    cache_read_tokens = 6_000 * (tool_calls + 1)
    price_in, price_out, price_cache = MODEL_PRICES.get(model, MODEL_PRICES["claude-sonnet-4-5"])
    cost = (
        input_tokens * price_in + output_tokens * price_out + cache_read_tokens * price_cache
    ) / 1_000_000
    return {
        "agent": "stub-agent",
        "model": model,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
        },
        "cost_usd": round(cost, 6),
        "tool_calls": tool_calls,
        "synthetic": True,
    }


def write_result(output_dir: Path, incident: dict[str, Any], report: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    document = run_result(incident, report)
    (output_dir / "result.json").write_text(json.dumps(document, indent=2) + "\n", "utf-8")


def main() -> int:
    incident_file = Path(os.environ.get("TRIAGE_INCIDENT_FILE") or "incident.json")
    output_dir = Path(os.environ.get("TRIAGE_OUTPUT_DIR") or "output")
    try:
        incident = json.loads(incident_file.read_text(encoding="utf-8"))
        outcome = outcome_for(incident)
        delay = float(os.environ.get("TRIAGE_STUB_DELAY") or 0)
    except (OSError, ValueError) as error:
        print(f"stub agent: cannot start: {error}", file=sys.stderr)
        return 2
    print(f"stub agent: investigating {incident.get('incidentId')} ({outcome})")
    time.sleep(max(delay, 0))
    report = output_dir / "investigation.md"
    if outcome == "crash":
        write_result(output_dir, incident, "")  # the tokens spent before it gave up
        print("stub agent: lost the connection to the cluster API; giving up", file=sys.stderr)
        return 2
    if outcome == "missing":
        print("stub agent: finished without writing a report")
        return 0
    output_dir.mkdir(parents=True, exist_ok=True)
    if outcome == "small":
        report.write_text("# Investigation\n\nNo findings.\n", encoding="utf-8")
        return 0
    text = build_report(incident, partial=outcome == "partial")
    report.write_text(text, encoding="utf-8")
    write_result(output_dir, incident, text)
    if outcome == "partial":
        print("stub agent: tool budget exhausted before remediation", file=sys.stderr)
        return 3
    print(f"stub agent: wrote {report}")
    return 0
