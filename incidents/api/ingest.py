"""`POST /api/v1/faults/`: a request body through `ingest_events`' reader and service.

The body is read by `incidents.streams.iter_records` (one object, a JSON array, or JSON Lines,
told apart as for a file) and each record goes through `IngestionService` like a line of
`ingest_events`, so the parser, the outcomes, the per-record size limit and the rejection
reasons are the command's. The service writes one record per transaction here (batch size 1):
that is what lets the answer name each record's outcome, and the request's record count is
bounded, so the cost is bounded too.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field

from incidents.ingest import IngestCounts, IngestionService, Outcome, Rejection
from incidents.streams import iter_records

MAX_RECORDS = 1000  # per request; more is a bulk load: use ingest_events
SOURCE = "api"


class TooManyRecords(ValueError):
    def __init__(self, count: int) -> None:
        super().__init__(
            f"at most {MAX_RECORDS} records per request, not {count}: "
            "send them in several requests or load them with ingest_events"
        )


@dataclass
class RecordResult:
    index: int
    line: int
    outcome: Outcome
    reason: str | None = None

    def as_dict(self) -> dict:
        result = {"index": self.index, "line": self.line, "outcome": self.outcome.value}
        if self.reason is not None:
            result["reason"] = self.reason
        return result


@dataclass
class BodyIngestion:
    results: list[RecordResult] = field(default_factory=list)
    counts: IngestCounts = field(default_factory=IngestCounts)

    def as_dict(self) -> dict:
        return {
            "results": [result.as_dict() for result in self.results],
            "counts": asdict(self.counts),
            "summary": self.counts.summary(),
        }


def _changed(before: dict[str, int], after: IngestCounts) -> Outcome:
    """The outcome whose count the last record raised."""
    for outcome in Outcome:
        if getattr(after, outcome.value) != before.get(outcome.value):
            return outcome
    raise AssertionError("the ingestion service counted no outcome for a record")


def ingest_body(body: bytes) -> BodyIngestion:
    """Ingest every record of `body`; each one's outcome, and the counts.

    Raises TooManyRecords before writing anything when the body holds more than MAX_RECORDS.
    Database errors propagate: the records before the failing one are stored (each in its own
    transaction) and the answer is a 500 that says nothing was necessarily kept after it.
    """
    records = list(iter_records(io.BytesIO(body)))
    if len(records) > MAX_RECORDS:
        raise TooManyRecords(len(records))
    rejections: list[Rejection] = []
    service = IngestionService(batch_size=1, on_reject=rejections.append)
    answer = BodyIngestion(counts=service.counts)
    for index, record in enumerate(records):
        before = asdict(service.counts)
        if record.error is not None:
            service.reject(record.raw, record.error, source=SOURCE, line=record.line)
        else:
            service.add(record.raw, source=SOURCE, line=record.line)
        service.flush()  # a no-op after add() has written the record (batch size 1)
        outcome = _changed(before, service.counts)
        reason = rejections[-1].reason if outcome is Outcome.REJECTED else None
        answer.results.append(RecordResult(index, record.line, outcome, reason))
    return answer
