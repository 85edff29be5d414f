"""The shipped stand-in agent: `python -m incidents.stub_agent` (the default agent command).

It reads the incident the worker wrote (`$TRIAGE_INCIDENT_FILE`, else `./incident.json`) and
writes `$TRIAGE_OUTPUT_DIR/investigation.md` (else `./output/`): an investigation report in the
original project's seven sections (executive triage card, problem statement, findings, root
cause with ranked hypotheses, remediation, proof of work, supporting evidence), built from a
playbook per fault type and the incident's own names, cluster, context and log samples. It has
no cluster access and says so in the report; it is there so the pipeline and the dashboard show
real-looking results without a real agent. Standard library only; it never imports Django.

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
import re
import sys
import time
from pathlib import Path
from typing import Any

from incidents.stub_agent.playbooks import GENERIC, Hypothesis, Playbook, playbook_for

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


def context_parts(context: Any) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(message, log samples, other fields) from upstream's context, whatever its shape."""
    if isinstance(context, str):
        return context, [], {}
    if not isinstance(context, dict):
        return json.dumps(context), [], {}
    message = ""
    for key in ("context", "message", "reason"):
        if isinstance(context.get(key), str):
            message = context[key]
            break
    logs = [entry for entry in context.get("logs") or [] if isinstance(entry, dict)]
    extra = {k: v for k, v in context.items() if k not in ("context", "message", "logs")}
    return message, logs, extra


def ranked(playbook: Playbook, text: str) -> list[tuple[Hypothesis, int, list[str]]]:
    """Hypotheses with confidence raised by the log patterns found, most likely first."""
    lowered = text.lower()
    scored = []
    for hypothesis in playbook.hypotheses:
        matched = [pattern for pattern in hypothesis.patterns if pattern in lowered]
        scored.append((hypothesis, hypothesis.confidence + 15 * len(matched), matched))
    total = sum(score for _, score, _ in scored) or 1
    normalised = [(h, round(100 * score / total), matched) for h, score, matched in scored]
    return sorted(normalised, key=lambda item: -item[1])


def fence(text: str, language: str = "text") -> str:
    """A fenced code block that the quoted text cannot close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}"


def cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ") or "—"


def build_report(incident: dict[str, Any], *, partial: bool = False) -> str:
    """The seven-section markdown report for `incident`."""
    fault_type = str(incident.get("faultType") or "Unknown")
    playbook_name, playbook = playbook_for(fault_type)
    resource = incident.get("resource") or {}
    name = resource.get("name") or "(unnamed)"
    namespace = resource.get("namespace") or "default"
    kind = resource.get("kind") or "resource"
    cluster = incident.get("cluster") or "(unknown cluster)"
    severity = incident.get("severity") or "unknown"
    message, logs, extra = context_parts(incident.get("context"))
    samples = "\n".join(str(entry.get("sample", "")) for entry in logs)
    hypotheses = ranked(playbook, f"{message}\n{samples}")
    top, top_confidence, _ = hypotheses[0]
    panics = [entry for entry in logs if entry.get("hasPanic")]
    target = f"{namespace}/{kind}/{name}"
    fields = {"namespace": namespace, "name": name, "kind": kind.lower()}

    lines = [
        f"# Investigation: {fault_type} of {target}",
        "",
        "## 1. Executive triage card",
        "",
        "| field | value |",
        "|---|---|",
        f"| Incident | `{cell(incident.get('incidentId'))}` |",
        f"| Cluster | {cell(cluster)} |",
        f"| Resource | {cell(target)} |",
        f"| Fault | {cell(fault_type)}: {cell(playbook.title)} |",
        f"| Severity | {cell(severity)} |",
        f"| Most likely cause | {cell(top.cause)} ({top_confidence}%) |",
        f"| First action | {cell(playbook.remediation[0])} |",
        f"| Impact | {cell(playbook.impact)} |",
        "",
        "## 2. Problem statement",
        "",
        f"At {incident.get('timestamp') or 'an unknown time'} kubernetes-mcp-server reported "
        f"`{fault_type}` for {kind} `{name}` in namespace `{namespace}` on cluster "
        f"`{cluster}` (fault `{incident.get('faultId', '?')}`): {playbook.title}.",
        "",
        f"> {message.strip() or 'The event carried no message.'}",
        "",
        "## 3. Findings",
        "",
        f"- The fault is classified `{severity}`; {playbook.impact[0].lower()}"
        f"{playbook.impact[1:]}",
        f"- {len(logs)} log sample(s) came with the event"
        + (f"; {len(panics)} contain a panic." if panics else "."),
    ]
    for entry in panics[:3]:
        first = next(
            (line for line in str(entry.get("sample", "")).splitlines() if "panic" in line.lower()),
            "",
        )
        if first:
            lines.append(f"- `{entry.get('container') or '(container)'}` panicked: {cell(first)}")
    for entry in logs[:3]:
        container = entry.get("container") or "(container)"
        which = "previous" if entry.get("previous") else "current"
        lines.append(f"- Container `{container}` ({which} instance) logged:")
        lines.append("")
        lines.append(fence(str(entry.get("sample", ""))[:2000]))
        lines.append("")
    if extra:
        keys = ", ".join(f"`{key}`" for key in sorted(extra)[:10])
        lines.append(f"- The event carries further context: {keys}.")
    lines += [
        "",
        "## 4. Root cause",
        "",
        "Ranked hypotheses (confidence from the playbook, raised by matching log evidence):",
        "",
        "| rank | hypothesis | confidence | evidence for | how to confirm |",
        "|---|---|---|---|---|",
    ]
    for rank, (hypothesis, confidence, matched) in enumerate(hypotheses, start=1):
        evidence = hypothesis.evidence_for
        if matched:
            evidence += "; logs mention " + ", ".join(f"'{m}'" for m in matched)
        lines.append(
            f"| {rank} | {cell(hypothesis.cause)} | {confidence}% | {cell(evidence)} "
            f"| {cell(hypothesis.check)} |"
        )
    if partial:
        lines += [
            "",
            "**Investigation incomplete:** the agent stopped before remediation was worked out.",
        ]
        return "\n".join(lines) + "\n"
    lines += ["", "## 5. Remediation", ""]
    lines += [f"{n}. {step}" for n, step in enumerate(playbook.remediation, start=1)]
    lines += [
        "",
        fence("\n".join(command.format(**fields) for command in playbook.commands), "bash"),
        "",
        "## 6. Proof of work",
        "",
        "- Read `incident.json` and the event's context from the workspace.",
        f"- Used the `{playbook_name}` playbook for `{fault_type}`"
        + (" (no specific playbook: generic checks)" if playbook is GENERIC else "")
        + f" and scored {len(playbook.hypotheses)} hypotheses against {len(logs)} log sample(s).",
        "- This report comes from the stub agent (`incidents.stub_agent`): it has no cluster "
        "access, so the commands above are recommendations, not steps it ran.",
        "",
        "## 7. Supporting evidence",
        "",
        "The event's context as received:",
        "",
        fence(json.dumps(incident.get("context"), indent=2, ensure_ascii=False)[:4000], "json"),
        "",
    ]
    return "\n".join(lines)


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
