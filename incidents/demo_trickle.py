"""Faults that keep arriving in the demo (`manage.py demo_trickle`), so that it never runs dry.

`make demo` triages the samples, then a slow worker takes the arriving faults one at a time: a
few minutes later nothing was pending or investigating any more. This keeps a few incidents
waiting: whenever fewer than `keep_pending` are pending it ingests the next record of the
arriving faults (samples/arriving.jsonl, in turn), exactly as upstream sent it except that its
timestamps say it fired now. That is what a real fault does when it fires again: the same fault
id, a new time. It becomes a new incident when the last one of its fault was triaged (a repeat:
"seen N times", earlier incidents linked), is counted on the open one otherwise, or on the
staging silence. Records go through the ingestion service like any other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from incidents.choices import Status
from incidents.ingest import IngestionService
from incidents.models import Incident


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _payload(record: dict[str, Any]) -> tuple[dict[str, Any] | None, Callable[[dict], None]]:
    """The fault payload inside a record, and how to put a changed one back."""
    params = record.get("params")
    if record.get("jsonrpc") and isinstance(params, dict):
        data = params.get("data")
        if isinstance(data, str):
            parsed = json.loads(data)

            def put(payload: dict) -> None:
                params["data"] = json.dumps(payload)

            return (parsed if isinstance(parsed, dict) else None), put
        return (data if isinstance(data, dict) else None), lambda payload: None
    return record, lambda payload: None


def fired_now(line: str, now: datetime) -> str:
    """The record of `line` with the fault's timestamps set to `now` (nothing else changed)."""
    record = json.loads(line)
    payload, put = _payload(record)
    if payload is not None:
        if "timestamp" in payload:
            payload["timestamp"] = _stamp(now)
        event = payload.get("event")
        if isinstance(event, dict):
            for key in ("timestamp", "lastTimestamp"):
                if key in event:
                    event[key] = _stamp(now)
        put(payload)
    return json.dumps(record)


@dataclass
class Trickle:
    """Feeds the arriving faults in turn whenever too few incidents are pending."""

    lines: list[str]
    keep_pending: int = 3
    position: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path, **kwargs) -> Trickle:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"{path}: no records to replay")
        return cls(lines=lines, **kwargs)

    def tick(self, now: datetime) -> int:
        """Ingest records until `keep_pending` are pending or every record was tried once;
        returns how many were ingested."""
        fed = 0
        for _ in range(len(self.lines)):
            if Incident.objects.filter(status=Status.PENDING).count() >= self.keep_pending:
                break
            service = IngestionService(batch_size=1)
            line = self.lines[self.position % len(self.lines)]
            self.position += 1
            service.add(fired_now(line, now), source="demo_trickle")
            service.flush()
            for name, count in asdict(service.counts).items():
                self.outcomes[name] = self.outcomes.get(name, 0) + count
            fed += 1
        return fed


def run(
    trickle: Trickle, *, interval: float, ticks: int | None = None, clock=None
) -> Iterator[int]:
    """Tick every `interval` seconds (forever, or `ticks` times), yielding what each fed."""
    from django.utils import timezone

    n = 0
    while ticks is None or n < ticks:
        yield trickle.tick(clock() if clock else timezone.now())
        n += 1
        if ticks is None or n < ticks:
            time.sleep(interval)
