"""Small builders for test data: defaults that look like kubernetes-mcp-server's, any override."""

import itertools
import json
from datetime import timedelta

from django.utils import timezone

from incidents.choices import TERMINAL_STATUSES, Status
from incidents.models import AgentExecution, FaultEvent, Incident, TriageReport
from incidents.store import copy_fault_fields

_sequence = itertools.count(1)

REPORT_MARKDOWN = """# Investigation: CrashLoop of payments/api-7f8b9c

## Executive triage card

| field | value |
|---|---|
| severity | critical |
| root cause | missing DATABASE_URL secret |

## Findings

```text
panic: missing DATABASE_URL
```
"""


def make_fault_event(**overrides) -> FaultEvent:
    """An unsaved FaultEvent; pass save=True to store it."""
    save = overrides.pop("save", False)
    n = next(_sequence)
    values = {
        "fault_id": f"f{n:015x}",
        "subscription_id": "sub-abc12345",
        "cluster": "prod-us-east-1",
        "resource_api_version": "v1",
        "resource_kind": "Pod",
        "resource_name": f"api-7f8b9c-{n}",
        "resource_namespace": "payments",
        "resource_uid": f"uid-{n}",
        "fault_type": "CrashLoop",
        "severity": "critical",
        "context": json.dumps({"context": "Back-off restarting failed container"}),
        "timestamp": timezone.now() - timedelta(minutes=5),
    }
    values.update(overrides)
    event = FaultEvent(**values)
    if save:
        event.save(force_insert=True)
    return event


def make_incident(*, event: FaultEvent | None = None, **overrides) -> Incident:
    """A saved Incident (and its saved fault event), written directly for speed.

    A terminal status gets completed_at, investigating gets started_at, unless given.
    """
    if event is None:
        event = make_fault_event(save=True)
    elif event._state.adding:
        event.save(force_insert=True)
    incident = Incident(fault=event)
    copy_fault_fields(event, incident)
    status = overrides.get("status", Status.PENDING)
    now = timezone.now()
    if status != Status.PENDING:
        overrides.setdefault("started_at", now - timedelta(minutes=3))
    if status in TERMINAL_STATUSES:
        overrides.setdefault("completed_at", now)
        overrides.setdefault("exit_code", 0 if status == Status.RESOLVED else 1)
    for name, value in overrides.items():
        setattr(incident, name, value)
    if incident.last_seen_at is None:
        incident.last_seen_at = incident.timestamp
    incident.save(force_insert=True)
    return incident


def make_execution(incident: Incident, **overrides) -> AgentExecution:
    now = timezone.now()
    values = {
        "incident": incident,
        "started_at": now - timedelta(minutes=2),
        "completed_at": now,
        "exit_code": 0,
        "error_message": "",
        "log_paths": "/w/x/logs/agent.stdout.log,/w/x/logs/agent.stderr.log",
    }
    values.update(overrides)
    execution = AgentExecution(**values)
    execution.save(force_insert=True)
    return execution


def make_report(incident: Incident, execution: AgentExecution | None = None, **overrides):
    """A saved report; `recorded=True` records it through the store (headline, counters)."""
    recorded = overrides.pop("recorded", False)
    execution = execution or make_execution(incident)
    values = {"incident": incident, "execution": execution, "report_markdown": REPORT_MARKDOWN}
    values.update(overrides)
    report = TriageReport(**values)
    if recorded:
        from incidents.store import DjangoStateStore

        return DjangoStateStore().record_triage_report(report)
    report.save(force_insert=True)
    return report
