"""The stub agent's report, in the form real agents write: the k8s4agents `k8s-troubleshooter`
template that nightcrier's system prompt makes them follow (sections 0-6, GFM tables, `- [ ]`
checklists, **[FACT-n]** / **[INF-n]** labels, lists right under a bold line, sub-items nested by
2 spaces, `<details>` around quoted output, `---` rules), so the demo shows what real reports
look like. Its first line says it is a synthetic demo report: it is written from the fault
event alone, with no cluster access, and quotes only what the event carried."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from incidents.stub_agent.playbooks import GENERIC, RISKS, Hypothesis, Playbook, playbook_for

SYNTHETIC_NOTE = (
    "> **Synthetic demo report.** Written by the stub agent (`incidents.stub_agent`) from the "
    "fault event alone: it has no cluster access and ran no command. Facts come from the event; "
    "hypotheses and actions from its playbook. Real agents write reports in this form."
)
PRIORITY = {"critical": "P1", "high": "P2", "error": "P2", "medium": "P3", "warning": "P3"}
IMPACT = {
    "Pod": ("Single Pod", "Pod"),
    "Node": ("One node and the pods on it", "Node"),
    "Deployment": ("One workload", "Workload"),
    "StatefulSet": ("One workload", "Workload"),
    "DaemonSet": ("One workload, on every node", "Workload"),
    "Job": ("One job run", "Job"),
    "CronJob": ("One job run", "Job"),
    "PersistentVolumeClaim": ("Pods using the claim", "Storage"),
}
EXIT_CRITERIA = {
    "Pod": ("`{name}` Ready for 10 minutes", "Restart count stable"),
    "Node": ("`{name}` Ready for 15 minutes", "No pods evicted from `{name}` since"),
    "Job": ("A rerun of `{name}` completes", "Downstream consumers have their data"),
    "PersistentVolumeClaim": ("`{name}` Bound", "The pods using it Running"),
}
DEFAULT_EXIT = ("`{name}` rollout complete, all replicas Ready", "No new fault for 30 minutes")
DIAGNOSTIC = re.compile(r"^(read|check|capture|confirm|compare|profile|list)\b", re.IGNORECASE)


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


def inline(value: Any, limit: int = 200) -> str:
    """One line of untrusted text as inline code (it cannot start markup or close the span)."""
    text = " ".join(str(value).split())[:limit].replace("|", "\\|")
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}" if text else "—"


def level(confidence: int) -> str:
    return "High" if confidence >= 50 else "Medium" if confidence >= 25 else "Low"


def one_line(value: Any) -> str:
    return " ".join(str(value).split())


def details(summary: str, body: str) -> list[str]:
    """A collapsed block: the summary is raw HTML (escaped here), the body markdown."""
    summary = html.escape(one_line(summary))
    return ["<details>", f"<summary>{summary}</summary>", "", body, "", "</details>", ""]


class _Facts:
    """The incident's facts, numbered as the report cites them."""

    def __init__(self, incident: dict[str, Any]):
        self.incident = incident
        self.fault_type = one_line(incident.get("faultType") or "Unknown")
        self.playbook_name, self.playbook = playbook_for(self.fault_type)
        resource = incident.get("resource") or {}
        # Upstream's names go into headings, tables and code spans: one line each.
        self.name = one_line(resource.get("name") or "(unnamed)")
        self.namespace = one_line(resource.get("namespace") or "default")
        self.kind = one_line(resource.get("kind") or "resource")
        self.cluster = one_line(incident.get("cluster") or "(unknown cluster)")
        self.severity = one_line(incident.get("severity") or "unknown")
        self.message, self.logs, self.extra = context_parts(incident.get("context"))
        samples = "\n".join(str(entry.get("sample", "")) for entry in self.logs)
        self.hypotheses = ranked(self.playbook, f"{self.message}\n{samples}")
        self.target = f"{self.namespace}/{self.kind}/{self.name}"
        self.when = one_line(incident.get("timestamp") or "an unknown time")
        self.lines: list[str] = []  # "**[FACT-n]** ..." in order

    def add(self, text: str, source: str) -> str:
        self.lines.append(f"- **[FACT-{len(self.lines) + 1}]** {text} — Source: {source}")
        return f"FACT-{len(self.lines)}"


def _observed(facts: _Facts) -> dict[str, list[str]]:
    """Record the facts; return the fact ids each kind of evidence can cite."""
    fault_id = facts.incident.get("faultId", "?")
    cited = {"fault": [facts.add(
        f"kubernetes-mcp-server reported `{facts.fault_type}` for {facts.kind} `{facts.name}` "
        f"in `{facts.namespace}` on `{facts.cluster}` at {facts.when}, severity "
        f"`{facts.severity}`", f"fault event `{fault_id}`")], "logs": []}  # fmt: skip
    if facts.message.strip():
        cited["fault"].append(facts.add(f"Event message: {inline(facts.message)}", "the event"))
    for entry in facts.logs[:3]:
        sample = str(entry.get("sample", ""))
        lines = [line for line in sample.splitlines() if line.strip()]
        telling = next((line for line in lines if "panic" in line.lower()), lines[-1:] or [""])
        which = "previous" if entry.get("previous") else "current"
        container = entry.get("container") or "(container)"
        cited["logs"].append(facts.add(
            f"Container `{cell(container)}` ({which} instance) logged {inline(telling)}",
            "log sample in the event (section 6)"))  # fmt: skip
    if facts.extra:
        keys = ", ".join(f"`{cell(key)}`" for key in sorted(facts.extra)[:10])
        facts.add(f"The event carries further context: {keys}", "the event (section 6)")
    return cited


def _card(facts: _Facts) -> list[str]:
    top, confidence, _ = facts.hypotheses[0]
    priority = PRIORITY.get(facts.severity.lower(), "P4")
    impact = IMPACT.get(facts.kind, (f"One {facts.kind}", facts.kind))[0]
    dot = {"P1": "🔴", "P2": "🔴", "P3": "🟠"}.get(priority, "🟡")
    escalate, assumption = RISKS.get(facts.playbook_name, RISKS["generic"])
    lines = [
        "## 0. Executive Triage Card", "",
        "| Field | Value |", "|-------|-------|",
        f"| **Status** | {dot} Active Incident |",
        f"| **Severity** | {priority} ({cell(facts.severity)}) |",
        f"| **Impact** | {impact} |",
        f"| **Duration** | Started: {cell(facts.when)}, Ongoing |",
        f"| **Resource** | `{cell(facts.target)}` on `{cell(facts.cluster)}` |",
        f"| **Incident** | `{cell(facts.incident.get('incidentId'))}` |", "",
        "### Primary Hypothesis",
        f"{top.cause} — Confidence: {level(confidence)} ({confidence}%)", "",
        f"⚠️ **Most Dangerous Assumption**: {assumption}", "",
        "### Top 3 Recommended Actions", "",
        "| Priority | Action | Expected Outcome | Risk |",
        "|----------|--------|------------------|------|",
    ]  # fmt: skip
    for n, step in enumerate(facts.playbook.remediation[:3], start=1):
        diagnostic = bool(DIAGNOSTIC.match(step))
        outcome = "Confirms or rules out H1" if diagnostic else "Clears the fault if H1 holds"
        lines.append(f"| {n} | {cell(step)} | {outcome} | {'Low' if diagnostic else 'Med'} |")
    lines += ["", "### Escalation Triggers", f"- [ ] Escalate if: {escalate}",
              f"- [ ] Escalate if: the fault is still open in 30 minutes ({priority})", "",
              "### Alternative Hypotheses Considered"]  # fmt: skip
    for n, (hypothesis, share, matched) in enumerate(facts.hypotheses[1:], start=2):
        why = "matches the logs too, but scores below H1" if matched else "no log evidence"
        lines.append(f"{n - 1}. H{n}: {hypothesis.cause} — Confidence: {share}%, "
                     f"Why deprioritized: {why}")  # fmt: skip
    return [*lines, ""]


def _problem(facts: _Facts) -> list[str]:
    panics = [entry for entry in facts.logs if entry.get("hasPanic")]
    criteria = EXIT_CRITERIA.get(facts.kind, DEFAULT_EXIT)
    return [
        "## 1. Problem Statement", "", "### Symptoms",
        f"- {facts.kind} `{cell(facts.name)}` in `{cell(facts.namespace)}`: "
        f"{facts.playbook.title}",
        f"- Event message: {inline(facts.message) if facts.message.strip() else 'none'}",
        f"- {len(facts.logs)} log sample(s) came with the event"
        + (f", {len(panics)} with a panic" if panics else ""), "",
        "### Timeline",
        f"- **First detected**: {cell(facts.when)}, kubernetes-mcp-server fault "
        f"`{cell(facts.fault_type)}`",
        "- **Reported by**: automated (kubernetes-mcp-server, then the triage worker)",
        f"- **Fault id**: `{cell(facts.incident.get('faultId', '?'))}`", "",
        "### Exit Criteria Checklist",
        *(f"- [ ] {line.format(name=cell(facts.name))}" for line in criteria), "",
    ]  # fmt: skip


def _findings(facts: _Facts, cited: dict[str, list[str]]) -> list[str]:
    impact, category = IMPACT.get(facts.kind, (f"One {facts.kind}", facts.kind))
    top, confidence, matched = facts.hypotheses[0]
    basis = ", ".join(cited["fault"] + (cited["logs"] if matched else [])) or "FACT-1"
    second = facts.hypotheses[1][0] if len(facts.hypotheses) > 1 else top
    return [
        "## 2. Assessment & Findings", "", "### Classification", "",
        "| Aspect | Value |", "|--------|-------|",
        f"| **Category** | {category} |", f"| **Blast Radius** | {impact} |",
        f"| **User Impact** | {cell(facts.playbook.impact)} |", "",
        "### Observed Facts",
        "> Facts are directly verifiable from kubectl output, logs, or metrics. "
        "Here they come from the fault event alone.", "",
        *facts.lines, "",
        "### Derived Inferences",
        "> Inferences are conclusions drawn from facts.", "",
        f"- **[INF-1]** {top.cause} — Confidence: {level(confidence)}",
        f"  - Based on: {basis}",
        f"  - Could be wrong if: {second.evidence_for}",
        f"- **[INF-2]** Impact: {facts.playbook.impact} — Confidence: Medium",
        f"  - Based on: {cited['fault'][0]}",
        "  - Could be wrong if: the resource recovered after the event was sent", "",
    ]  # fmt: skip


def _root_cause(facts: _Facts) -> list[str]:
    lines = ["## 3. Root Cause Analysis", ""]
    count = len(facts.hypotheses)
    for n, (hypothesis, confidence, matched) in enumerate(facts.hypotheses, start=1):
        following = f"test H{n + 1}" if n < count else "escalate with this report"
        evidence = [hypothesis.evidence_for]
        if matched:
            evidence.append("the event's logs mention " + ", ".join(f"'{m}'" for m in matched))
        lines += [
            f"### H{n}: {hypothesis.cause} — Confidence: {level(confidence)} ({confidence}%)", "",
            f"**Statement**: {hypothesis.cause}; {hypothesis.evidence_for}.", "",
            "**Evidence For**:", *(f"- {item}" for item in evidence), "",
            "**Evidence Against**:",
            "- None found in the event" if n == 1 else "- Fewer matching signals than H1", "",
            "**Falsification Test**:", f"- Check: {hypothesis.check}",
            f"- Expected if TRUE: {hypothesis.evidence_for}",
            f"- Expected if FALSE: nothing of the kind; {following}", "",
        ]  # fmt: skip
    return [*lines, "---", "", "### Remaining Unknowns",
            f"- [ ] The current state of `{cell(facts.name)}`: no cluster access",
            "- [ ] What changed just before the fault: no audit log access", ""]  # fmt: skip


def _remediation_and_proof(facts: _Facts) -> list[str]:
    fields = {"namespace": facts.namespace, "name": facts.name, "kind": facts.kind.lower()}
    commands = "\n".join(command.format(**fields) for command in facts.playbook.commands)
    generic = " (no specific playbook: generic checks)" if facts.playbook is GENERIC else ""
    return [
        "## 4. Remediation Plan", "", "### Immediate Mitigation", "",
        "| Step | Action | Validation |", "|------|--------|------------|",
        *(f"| {n} | {cell(step)} | Exit criteria of section 1 |"
          for n, step in enumerate(facts.playbook.remediation, start=1)), "",
        "### Commands to Run", "", fence(commands, "bash"), "",
        "## 5. Proof of Work", "", "### Commands Executed", "",
        fence("# none: no cluster access. Read from the workspace:\ncat incident.json", "bash"),
        "", "### Constraints Documented",
        "- Access constraint: no kubeconfig; the commands in section 4 are recommendations",
        f"- Playbook: `{facts.playbook_name}` for `{cell(facts.fault_type)}`{generic}, "
        f"{len(facts.playbook.hypotheses)} hypotheses scored against {len(facts.logs)} "
        "log sample(s)", "",
    ]  # fmt: skip


def _evidence(facts: _Facts) -> list[str]:
    lines = ["## 6. Supporting Evidence", "", "### Log Excerpts", ""]
    for entry in facts.logs[:3]:
        container = entry.get("container") or "(container)"
        which = "previous" if entry.get("previous") else "current"
        lines += details(f"Container {container} ({which} instance): log sample from the event",
                         fence(str(entry.get("sample", ""))[:2000]))  # fmt: skip
    if not facts.logs:
        lines += ["No log sample came with the event.", ""]
    context = json.dumps(facts.incident.get("context"), indent=2, ensure_ascii=False)[:4000]
    lines += ["### Fault Event", ""]
    return lines + details("The event's context as received", fence(context, "json"))


def build_report(incident: dict[str, Any], *, partial: bool = False) -> str:
    """The k8s4agents-form markdown report for `incident` (a partial one stops after the root
    cause analysis, as an agent that ran out of budget would)."""
    facts = _Facts(incident)
    cited = _observed(facts)
    lines = [SYNTHETIC_NOTE, "", "# Kubernetes Incident Triage Report", ""]
    lines += _card(facts) + _problem(facts) + _findings(facts, cited)
    lines += _root_cause(facts)
    if partial:
        lines += ["**Investigation incomplete:** the agent stopped before remediation was "
                  "worked out.", ""]  # fmt: skip
    else:
        lines += _remediation_and_proof(facts) + _evidence(facts)
    return "\n".join(lines).rstrip() + "\n"
