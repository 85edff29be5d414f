"""What is sent: a Slack Block Kit message, or a JSON body signed with HMAC-SHA256.

Messages are built when they are sent, from the incident as it is then (its status, the
report), plus the `detail` written with the event. Links are absolute, from `TRIAGE_BASE_URL`.

The webhook body (keys sorted, compact JSON):

    {"event": "report_ready", "idempotency_key": "<uuid>", "timestamp": "<event time, ISO>",
     "incident": {"incident_id", "fault_id", "status", "severity", "cluster", "namespace",
                  "kind", "name", "resource", "fault_type", "created_at", "started_at",
                  "completed_at", "triage_seconds", "failure_reason", "url"} | null,
     "report": {"report_id", "url", "raw_url", "generated_at", "title", "root_cause",
                "confidence"} | null,
     "detail": {... what the event carries: failures, downtime_seconds, by, resolution ...},
     "links": {"dashboard": "<url>"}}

Headers: `X-Triage-Timestamp` (Unix seconds of this attempt), `X-Triage-Signature`
(`sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>` keyed with the channel's secret),
`X-Triage-Event`, and `Idempotency-Key` (the same on every attempt; Slack messages carry it too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse

from incidents.models import Incident, Notification, TriageReport
from incidents.notifications.kinds import ChannelKind, EventKind
from incidents.report_headline import report_headline

USER_AGENT = "incident-triage-notifier/1"
SEVERITY_EMOJI = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵"}
# Slack's limits: header 150 characters, a section's text 3000, a field 2000.
HEADER_CHARS, TEXT_CHARS, FIELD_CHARS = 150, 2900, 1900


@dataclass(frozen=True)
class Request:
    headers: dict[str, str]
    body: bytes


def absolute(path: str, base_url: str | None = None) -> str:
    return f"{(base_url if base_url is not None else settings.TRIAGE_BASE_URL)}{path}"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>` keyed with the channel's secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _report(notification: Notification) -> TriageReport | None:
    report_id = (notification.detail or {}).get("report_id")
    if not report_id:
        return None
    reports = TriageReport.objects.using(notification._state.db).defer("report_html")
    return reports.filter(pk=report_id).first()


def incident_fields(incident: Incident, base_url: str) -> dict:
    duration = (
        (incident.completed_at - incident.started_at).total_seconds()
        if incident.completed_at and incident.started_at
        else None
    )
    return {
        "incident_id": str(incident.incident_id),
        "fault_id": incident.fault_id,
        "status": incident.status,
        "severity": incident.severity,
        "cluster": incident.cluster,
        "namespace": incident.resource_namespace,
        "kind": incident.resource_kind,
        "name": incident.resource_name,
        "resource": incident.resource_label,
        "fault_type": incident.fault_type,
        "created_at": _iso(incident.created_at),
        "started_at": _iso(incident.started_at),
        "completed_at": _iso(incident.completed_at),
        "triage_seconds": round(duration, 1) if duration is not None else None,
        "failure_reason": incident.failure_reason or "",
        "url": absolute(reverse("incidents:detail", args=[incident.incident_id]), base_url),
    }


def report_fields(report: TriageReport, base_url: str) -> dict:
    headline = report_headline(report.report_markdown)
    return {
        "report_id": str(report.report_id),
        "url": absolute(reverse("incidents:report", args=[report.report_id]), base_url),
        "raw_url": absolute(reverse("incidents:report-raw", args=[report.report_id]), base_url),
        "generated_at": _iso(report.generated_at),
        "title": headline["title"],
        "root_cause": headline["root_cause"],
        "confidence": headline["confidence"],
    }


def webhook_body(notification: Notification, base_url: str) -> dict:
    incident = notification.incident
    report = _report(notification)
    return {
        "event": notification.event,
        "idempotency_key": str(notification.notification_id),
        "timestamp": _iso(notification.created_at),
        "incident": incident_fields(incident, base_url) if incident else None,
        "report": report_fields(report, base_url) if report else None,
        "detail": notification.detail or {},
        "links": {"dashboard": absolute(reverse("incidents:list"), base_url)},
    }


def build_request(notification: Notification, *, base_url: str, now: float | None = None):
    """The headers and body of one attempt (the timestamp and signature are per attempt)."""
    channel = notification.channel
    body = webhook_body(notification, base_url)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": str(notification.notification_id),
        "X-Triage-Event": notification.event,
    }
    if channel.kind == ChannelKind.SLACK:
        payload = slack_message(body)
    else:
        payload = body
    data = json.dumps(payload, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"))
    encoded = data.encode()
    if channel.kind == ChannelKind.WEBHOOK:
        timestamp = str(int(now if now is not None else time.time()))
        headers["X-Triage-Timestamp"] = timestamp
        headers["X-Triage-Signature"] = sign(channel.secret, timestamp, encoded)
    return Request(headers=headers, body=encoded)


# -- Slack -------------------------------------------------------------------------------------
def escape(text: object, limit: int = TEXT_CHARS) -> str:
    """Text for Slack mrkdwn: `&`, `<`, `>` escaped (no `<!channel>`, no forged links), cut."""
    value = str(text if text is not None else "")
    value = value if len(value) <= limit else value[: limit - 1] + "…"
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = int(seconds)
    parts = [(total // 3600, "h"), (total % 3600 // 60, "m"), (total % 60, "s")]
    return " ".join(f"{value}{unit}" for value, unit in parts if value) or "0s"


def _plain(text: str, limit: int = HEADER_CHARS) -> dict:
    value = text if len(text) <= limit else text[: limit - 1] + "…"
    return {"type": "plain_text", "text": value, "emoji": True}


def _mrkdwn(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def _button(text: str, url: str, *, primary: bool = False) -> dict:
    button = {"type": "button", "text": _plain(text, 75), "url": url}
    if primary:
        button["style"] = "primary"
    return button


HEADERS = {
    EventKind.INCIDENT_OPENED: "New incident",
    EventKind.REPORT_READY: "Triage report ready",
    EventKind.AGENT_FAILED: "Triage failed",
    EventKind.ACKNOWLEDGED: "Incident acknowledged",
    EventKind.CLOSED: "Incident closed",
}


def _incident_blocks(body: dict) -> list[dict]:
    incident, report, detail = body["incident"], body["report"], body["detail"]
    emoji = SEVERITY_EMOJI.get(incident["severity"], "⚪")
    title = f"{emoji} {HEADERS.get(body['event'], body['event'])}: {incident['fault_type']}"
    fields = [
        ("Severity", incident["severity"]),
        ("Cluster", incident["cluster"]),
        ("Resource", incident["resource"]),
        ("Fault type", incident["fault_type"]),
        ("Status", incident["status"]),
        ("Triage took", duration_text(incident["triage_seconds"])),
    ]
    blocks: list[dict] = [
        {"type": "header", "text": _plain(title)},
        {
            "type": "section",
            "fields": [_mrkdwn(f"*{name}*\n{escape(value, 200)}") for name, value in fields],
        },
    ]
    lines = []
    if detail.get("unchanged"):
        lines.append("*Unchanged:* same conclusion as the previous report of this fault")
    if report:
        lines.append(f"*Root cause:* {escape(report['root_cause'] or 'not stated in the report')}")
        lines.append(f"*Confidence:* {escape(report['confidence'] or 'not stated')}")
    if body["event"] == EventKind.AGENT_FAILED:
        lines.append(f"*Why:* {escape(detail.get('failure_reason') or incident['failure_reason'])}")
    for key in ("by", "resolution", "note"):
        if detail.get(key):
            lines.append(f"*{key.capitalize()}:* {escape(detail[key])}")
    if lines:
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines))})
    buttons = [_button("View report", report["url"], primary=True)] if report else []
    buttons.append(_button("View incident", incident["url"], primary=not report))
    blocks.append({"type": "actions", "elements": buttons})
    return blocks


def _system_blocks(body: dict) -> list[dict]:
    detail = body["detail"]
    if body["event"] == EventKind.AGENTS_DEGRADED and detail.get("reason") == "budget":
        title = "⏸️ AI agents paused: daily budget reached"
        text = (
            f"${escape(detail.get('spent_usd'))} of the ${escape(detail.get('budget_usd'))} "
            f"daily agent budget spent on {escape(detail.get('day'))} (UTC). Incidents wait as "
            f"pending until {escape(detail.get('resumes_at'))} or a raised budget."
        )
    elif body["event"] == EventKind.AGENTS_DEGRADED:
        title = "🚨 AI agent system degraded"
        text = (
            f"{detail.get('failures')} triage runs in a row have failed "
            f"(since {escape(detail.get('failing_since'))}). New incidents may go untriaged.\n"
            f"*Last failure:* {escape(detail.get('last_failure_reason') or 'no reason recorded')}"
        )
    else:
        title = "✅ AI agent system recovered"
        text = (
            f"A triage run succeeded after {detail.get('failures')} failed runs; "
            f"down for {duration_text(detail.get('downtime_seconds'))}."
        )
    return [
        {"type": "header", "text": _plain(title)},
        {"type": "section", "text": _mrkdwn(text)},
        {
            "type": "actions",
            "elements": [_button("Open the dashboard", body["links"]["dashboard"])],
        },
    ]


def slack_message(body: dict) -> dict:
    """The incoming-webhook JSON: Block Kit blocks, and `text` for notifications and old clients."""
    if body["incident"] is not None:
        incident = body["incident"]
        text = (
            f"{HEADERS.get(body['event'], body['event'])}: {incident['severity']} "
            f"{incident['fault_type']} on {incident['resource']} in {incident['cluster']}"
        )
        blocks = _incident_blocks(body)
    else:
        blocks = _system_blocks(body)
        text = blocks[0]["text"]["text"]
    return {"text": escape(text), "blocks": blocks}
