"""Channels: creating them, routing to them, and showing their credentials masked.

A channel's URL (a Slack webhook URL *is* its credential) and secret are never printed, logged or
shown in full once saved: everything that displays them goes through `mask_url`/`mask_secret`,
and `redact` scrubs them out of error texts before those are stored or logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from incidents.choices import SEVERITY_RANK, Severity
from incidents.models import NotificationChannel
from incidents.notifications.kinds import SYSTEM_EVENTS, ChannelKind, EventKind

MASK = "…"
_validate_url = URLValidator(schemes=["http", "https"])


class ChannelError(ValueError):
    """A channel the schema refuses; the message names the channel and the fields."""

    def __init__(self, name: str, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        detail = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        super().__init__(f"channel {name!r} is invalid: {detail}")


def mask_url(url: str) -> str:
    """`https://hooks.slack.com/…wxyz`: the scheme and host, and the last four characters."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    tail = url[-4:] if len(url) > 24 else ""
    return f"{parts.scheme}://{host}{port}/{MASK}{tail}"


def mask_secret(secret: str) -> str:
    return f"set ({len(secret)} characters)" if secret else "not set"


def redact(text: str, channel: NotificationChannel) -> str:
    """`text` with the channel's URL, its path and query, and its secret replaced by the mask."""
    secrets = [channel.url, channel.secret]
    parts = urlsplit(channel.url)
    secrets += [parts.path, parts.query]
    for secret in sorted((s for s in secrets if s and len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, mask_url(channel.url) if secret == channel.url else MASK)
    return text


def validate_channel(channel: NotificationChannel) -> None:
    """Field rules plus what the JSON lists may hold; ChannelError naming every bad field."""
    errors: dict[str, list[str]] = {}
    try:
        channel.full_clean(validate_unique=True, validate_constraints=False)
    except ValidationError as error:
        errors.update(error.message_dict)
    try:
        _validate_url(channel.url)
    except ValidationError:
        errors.setdefault("url", []).append("must be an http:// or https:// URL")
    if channel.kind == ChannelKind.WEBHOOK and not channel.secret:
        errors.setdefault("secret", []).append("a webhook needs a secret to sign with")
    unknown = sorted(set(channel.events) - set(EventKind.values))
    if unknown:
        errors.setdefault("events", []).append(
            f"unknown {', '.join(unknown)} (choose from {', '.join(EventKind.values)})"
        )
    if any(not isinstance(c, str) or not c.strip() for c in channel.clusters):
        errors.setdefault("clusters", []).append("each cluster must be a non-empty name")
    if errors:
        raise ChannelError(channel.name, errors)


def create_channel(
    *,
    name: str,
    kind: str,
    url: str,
    secret: str = "",
    min_severity: str = Severity.LOW,
    clusters: Sequence[str] = (),
    events: Sequence[str] = (),
    enabled: bool = True,
    skip_unchanged_reports: bool = False,
) -> NotificationChannel:
    """Validate and save a new channel. Raises ChannelError (also for a name in use)."""
    channel = NotificationChannel(
        name=name.strip(),
        kind=kind,
        url=url.strip(),
        secret=secret.strip(),
        min_severity=min_severity,
        clusters=sorted({c.strip() for c in clusters}),
        events=sorted(set(events), key=EventKind.values.index) if events else [],
        enabled=enabled,
        skip_unchanged_reports=skip_unchanged_reports,
    )
    validate_channel(channel)
    channel.save(force_insert=True)
    return channel


def routes(
    channel: NotificationChannel, event: str, *, severity: str | None, cluster: str | None
) -> bool:
    """Whether `event` (about an incident of `severity` in `cluster`, if any) goes to `channel`.

    Events about the agent system as a whole have no severity or cluster: only the channel's
    event list applies to them.
    """
    if not channel.enabled or (channel.events and event not in channel.events):
        return False
    if event in SYSTEM_EVENTS:
        return True
    if channel.clusters and cluster not in channel.clusters:
        return False
    unranked = len(SEVERITY_RANK)
    rank = unranked if severity is None else SEVERITY_RANK.get(severity, unranked)
    return rank <= SEVERITY_RANK[channel.min_severity]


def describe(channel: NotificationChannel) -> Iterable[str]:
    """Lines that show a channel, credentials masked (add_channel prints these)."""
    yield f"channel {channel.name} (id {channel.pk}): {channel.get_kind_display()}"
    yield f"  url: {mask_url(channel.url)}"
    yield f"  secret: {mask_secret(channel.secret)}"
    yield f"  min severity: {channel.min_severity}"
    yield f"  clusters: {', '.join(channel.clusters) or 'all'}"
    yield f"  events: {', '.join(channel.events) or 'all'}"
    yield f"  enabled: {'yes' if channel.enabled else 'no'}"
