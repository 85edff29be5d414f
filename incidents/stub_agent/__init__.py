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

Environment:
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
        print("stub agent: lost the connection to the cluster API; giving up", file=sys.stderr)
        return 2
    if outcome == "missing":
        print("stub agent: finished without writing a report")
        return 0
    output_dir.mkdir(parents=True, exist_ok=True)
    if outcome == "small":
        report.write_text("# Investigation\n\nNo findings.\n", encoding="utf-8")
        return 0
    report.write_text(build_report(incident, partial=outcome == "partial"), encoding="utf-8")
    if outcome == "partial":
        print("stub agent: tool budget exhausted before remediation", file=sys.stderr)
        return 3
    print(f"stub agent: wrote {report}")
    return 0
