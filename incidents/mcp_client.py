"""The MCP transport, in one place: connect, subscribe to fault notifications, unsubscribe.

This is the only module that imports the `mcp` SDK (pinned in requirements.txt). The SDK marks
the logging capability deprecated (SEP-2577) while kubernetes-mcp-server delivers its faults
through it, so an upstream change should touch this file and nothing else.

What kubernetes-mcp-server expects from a client, and what `subscribe()` does, in order:

1. streamable HTTP to a URL such as `http://host:8080/mcp`, then `initialize`;
2. `logging/setLevel` `info`, before subscribing — without it the Go server drops every
   notification. A server without it (the SDK's own `MCPServer`) answers "Method not found";
   that one error is tolerated;
3. the tool `events_subscribe` with `mode` (`faults` or `events`; upstream refuses anything
   else) and, for a server with several kubeconfig contexts, `context`. The fork has no
   `cluster` argument and ignores `namespaces`/`labelSelector` in faults mode, so neither is
   sent. The answer carries a `subscriptionId` (upstream returns it as JSON inside markdown
   text, so the text is searched for it). A refusal (no such tool, invalid mode, any tool
   error) raises `SubscriptionRefused` with the server's words: a configuration error that no
   reconnect can fix;
4. `notifications/message` from then on, handed to `on_message` as `LogMessage`s.

A subscription dies with its session: callers reconnect by entering `subscribe()` again. To know
when to, they ping (`Subscription.ping()`) and look at `notification_stream_down_for()`: the SDK
gives up reopening a broken notification stream without telling anyone.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import ClientSession, MCPDeprecationWarning, MCPError, types
from mcp.client.streamable_http import streamable_http_client

SUBSCRIPTION_ERROR_LOGGER = "kubernetes/subscription_error"
EVENTS_LOGGER = "kubernetes/events"
# What `events_subscribe` accepts (fork pkg/events/manager.go:100).
MODES = ("faults", "events")
# Accepted from the command line for old configurations: the mode's name on 2025-12-20 only.
DEPRECATED_MODES = {"resource-faults": "faults"}

# Seconds to wait for the server to answer one request (initialize, subscribe, ping).
REQUEST_TIMEOUT = 30.0

_SUBSCRIPTION_ID = re.compile(r'"subscriptionId"\s*:\s*"([^"]+)"')


class SubscriptionRefused(Exception):
    """The server refused `events_subscribe` (no such tool, invalid mode, a tool error) or
    answered without a subscription id: a configuration error, not a network blip."""


@dataclass(frozen=True)
class SubscriptionFilters:
    """What to subscribe to: the mode, and the kubeconfig context on a multi-context server."""

    mode: str = "faults"
    context: str | None = None

    def arguments(self) -> dict[str, Any]:
        """The `events_subscribe` arguments: the mode (a deprecated name as it is now called),
        and `context` only when set (a single-context server has no such argument)."""
        arguments: dict[str, Any] = {"mode": DEPRECATED_MODES.get(self.mode, self.mode)}
        if self.context:
            arguments["context"] = self.context
        return arguments


@dataclass(frozen=True)
class LogMessage:
    """One `notifications/message` as it arrived: level, logger and data untouched."""

    level: str
    logger: str | None
    data: Any

    def envelope(self) -> dict[str, Any]:
        """The full JSON-RPC notification, the same record shape `ingest_events` reads."""
        params: dict[str, Any] = {"level": self.level, "data": self.data}
        if self.logger is not None:
            params["logger"] = self.logger
        return {"jsonrpc": "2.0", "method": "notifications/message", "params": params}


class _WatchedStream(httpx2.AsyncByteStream):
    """A response body that reports when it is closed (ended, broken or abandoned)."""

    def __init__(self, inner: httpx2.AsyncByteStream, on_close: Callable[[], None]) -> None:
        self._inner = inner
        self._on_close: Callable[[], None] | None = on_close

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._on_close is not None:
                self._on_close()
                self._on_close = None


class NotificationStreamWatch:
    """Whether the SDK holds the notification stream (the standing GET) open, seen from HTTP.

    The SDK reopens a dropped GET stream twice, then gives up without telling the session:
    pings still succeed but no notification arrives any more. This is the only way to see it.
    """

    def __init__(self) -> None:
        self._open = 0
        self._down_since: float | None = time.monotonic()  # not opened yet

    async def on_response(self, response: httpx2.Response) -> None:
        if response.request.method == "GET" and response.status_code == 200:
            self._open += 1
            self._down_since = None
            response.stream = _WatchedStream(response.stream, self._closed)  # type: ignore[arg-type]

    def _closed(self) -> None:
        self._open -= 1
        if self._open == 0:
            self._down_since = time.monotonic()

    def down_for(self) -> float:
        """Seconds since no notification stream has been open; 0 while one is."""
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since


class Subscription:
    """A live subscription on an open session; only valid inside `subscribe()`."""

    def __init__(
        self,
        session: ClientSession,
        subscription_id: str,
        *,
        timeout: float,
        stream: NotificationStreamWatch,
    ):
        self._session = session
        self._timeout = timeout
        self._stream = stream
        self.subscription_id = subscription_id

    def notification_stream_down_for(self) -> float:
        """Seconds the notification stream has been closed (0 while open); see the watch."""
        return self._stream.down_for()

    async def ping(self) -> None:
        """Round-trip a `ping`; raises when the server is gone or the session has expired.

        The session's read timeout bounds the wait, so a hung server counts as gone too.
        """
        await self._session.send_ping()

    async def unsubscribe(self) -> None:
        """Call `events_unsubscribe`; raises `SubscriptionRefused` when the server says no."""
        result = await self._session.call_tool(
            "events_unsubscribe",
            {"subscriptionId": self.subscription_id},
            read_timeout_seconds=self._timeout,
        )
        if result.is_error:
            raise SubscriptionRefused(f"events_unsubscribe failed: {_text_of(result)}")


def parse_header(value: str) -> tuple[str, str]:
    """`'Name: value'` -> `('Name', 'value')`; a ValueError names what is wrong."""
    name, colon, header_value = value.partition(":")
    name = name.strip()
    if not colon or not name or any(c.isspace() for c in name):
        raise ValueError(f"header {value!r} is not in the form 'Name: value'")
    return name, header_value.strip()


def subscription_id_from(result: types.CallToolResult) -> str:
    """The `subscriptionId` in an `events_subscribe` result, structured or inside its text."""
    structured = result.structured_content or {}
    if isinstance(structured.get("subscriptionId"), str):
        return structured["subscriptionId"]
    text = _text_of(result)
    match = _SUBSCRIPTION_ID.search(text)
    if match is None:
        raise SubscriptionRefused(f"events_subscribe returned no subscriptionId: {text[:200]!r}")
    return json.loads(f'"{match.group(1)}"')


def _text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def _set_log_level(session: ClientSession, level: types.LoggingLevel) -> None:
    """`logging/setLevel`, tolerating a server that does not implement it (the SDK's own)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await session.set_logging_level(level)
    except MCPError as error:
        if error.code != types.METHOD_NOT_FOUND:
            raise


# JSON-RPC errors that mean "this call can never work here": no such tool (the Go SDK answers
# invalid params, others method not found). Other errors (an unknown session after a server
# restart, an internal error) are left to the reconnect loop.
_REFUSALS = frozenset({types.INVALID_PARAMS, types.METHOD_NOT_FOUND})


async def _subscribe(session: ClientSession, filters: SubscriptionFilters) -> str:
    """Call `events_subscribe`; its subscription id, or SubscriptionRefused in its words."""
    try:
        result = await session.call_tool("events_subscribe", filters.arguments())
    except MCPError as error:
        if error.code in _REFUSALS:
            raise SubscriptionRefused(f"events_subscribe refused: {error.message}") from error
        raise
    if result.is_error:
        raise SubscriptionRefused(f"events_subscribe refused: {_text_of(result)}")
    return subscription_id_from(result)


async def _patient_notification_stream(request: httpx2.Request) -> None:
    """No read timeout on the GET that carries the notifications; every other request keeps one.

    The notification stream may stay quiet for hours, and the SDK stops reopening it after two
    failures, so a read timeout there would end notifications while pings still succeed. Every
    POST and DELETE stays bounded: a server that hangs must not hang the client's shutdown.
    """
    if request.method == "GET":
        timeouts = dict(request.extensions.get("timeout") or {})
        request.extensions = {**request.extensions, "timeout": {**timeouts, "read": None}}


@asynccontextmanager
async def subscribe(
    url: str,
    filters: SubscriptionFilters,
    *,
    on_message: Callable[[LogMessage], None],
    headers: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> AsyncIterator[Subscription]:
    """Connect, initialize, set the level, subscribe; yield the live subscription.

    `on_message` is called on the event loop for every `notifications/message`, in arrival
    order; it must not block. Any failure to connect or a transport that breaks later surfaces
    as an exception (often an `ExceptionGroup` from the SDK's task groups) out of this context.
    Leaving the context closes the session (the server then drops the subscription) but does
    not call `events_unsubscribe`: do that explicitly for a clean goodbye.
    """

    async def logging_callback(params: types.LoggingMessageNotificationParams) -> None:
        on_message(LogMessage(level=params.level, logger=params.logger, data=params.data))

    stream = NotificationStreamWatch()
    async with (
        httpx2.AsyncClient(
            headers=headers or {},
            timeout=httpx2.Timeout(timeout),
            event_hooks={
                "request": [_patient_notification_stream],
                "response": [stream.on_response],
            },
        ) as http_client,
        streamable_http_client(url, http_client=http_client) as (read_stream, write_stream),
        ClientSession(
            read_stream,
            write_stream,
            logging_callback=logging_callback,
            read_timeout_seconds=timeout,
        ) as session,
    ):
        await session.initialize()
        await _set_log_level(session, "info")
        subscription_id = await _subscribe(session, filters)
        yield Subscription(session, subscription_id, timeout=timeout, stream=stream)
