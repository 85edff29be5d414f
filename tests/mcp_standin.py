"""A kubernetes-mcp-server stand-in for the subscribe_mcp tests, built on the MCP SDK's server side.

Run as a subprocess so a test can kill it and start it again on the same port:

    python tests/mcp_standin.py --port 8931 --scenario mixed --tag a --record /tmp/calls.jsonl

It serves streamable HTTP on 127.0.0.1 only, implements `events_subscribe` (answering like
upstream: markdown text around a JSON object with the `subscriptionId`) and `events_unsubscribe`,
and after each subscribe emits `notifications/message` from a background task, as the real server
does, on the session's standalone stream:

- `mixed`: two `kubernetes/resource-faults` faults, one `kubernetes/faults` fault (the event shape),
  one `kubernetes/subscription_error`, one record with an invalid severity (rejected) and one
  notification from an unrelated logger (ignored) — then, with `--interval`, one more
  resource fault every interval until unsubscribed.
- `burst`: `--count` resource faults as fast as the server can send them.

Every fault id carries `--tag`, so a test can tell the events of a restarted server from the
first one's. `--break-stream-after N` cuts the notification stream (the client's standing GET)
after N periodic faults and answers 503 to every new GET for `--break-for` seconds, while the
rest of the server keeps answering: the SDK client gives up on the stream without a word.

Each tool call is appended to `--record` as one JSON line (with the Authorization header it came
with), so tests can assert subscribe/unsubscribe happened.

Like `MCPServer` itself, the stand-in has no `logging/setLevel`: the client must tolerate that.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

# Delay before the first notification: the client opens its standalone GET stream right after
# `initialize`; anything sent before it is attached is dropped by the SDK (no event store).
FIRST_NOTIFICATION_DELAY = 0.3

RESOURCE_FAULTS = "kubernetes/resource-faults"
EVENT_FAULTS = "kubernetes/faults"
SUBSCRIPTION_ERROR = "kubernetes/subscription_error"


def resource_fault(tag: str, n: int, *, subscription_id: str, severity: str = "critical") -> dict:
    """A payload in the `kubernetes/resource-faults` shape (camelCase, as upstream sends it)."""
    return {
        "faultId": f"{tag}-{n:06d}",
        "subscriptionId": subscription_id,
        "cluster": "standin-cluster",
        "faultType": "CrashLoop",
        "severity": severity,
        "resource": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": f"api-{tag}-{n}",
            "namespace": "payments",
            "uid": f"uid-{tag}-{n}",
        },
        "context": "Back-off restarting failed container",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "logs": [{"container": "api", "previous": True, "hasPanic": False, "sample": "boom"}],
    }


def event_fault(tag: str, *, subscription_id: str) -> dict:
    """A payload in the `kubernetes/faults` shape: a Kubernetes Event, no faultId."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "subscriptionId": subscription_id,
        "cluster": "standin-cluster",
        "severity": "warning",
        "timestamp": now,
        "event": {
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off pulling image",
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": f"web-{tag}",
                "namespace": "shop",
                "uid": f"uid-web-{tag}",
            },
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 3,
        },
        "logs": [],
    }


class StreamBreaker:
    """ASGI wrapper: while broken, open notification streams are cut and new ones get a 503."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.broken_until = 0.0

    def break_for(self, seconds: float) -> None:
        self.broken_until = time.monotonic() + seconds

    def broken(self) -> bool:
        return time.monotonic() < self.broken_until

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if self.broken():
            headers = [(b"content-type", b"text/plain")]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": b"notification stream broken"})
            return

        async def guarded_send(message: dict) -> None:
            if self.broken():
                raise ConnectionAbortedError("stand-in: notification stream cut")
            await send(message)

        await self.app(scope, receive, guarded_send)


class StandIn:
    """The subscriptions of one stand-in process and the tasks that feed them."""

    def __init__(
        self,
        *,
        scenario: str,
        count: int,
        tag: str,
        interval: float,
        record: Path | None,
        break_after: int | None = None,
        break_for: float = 4.0,
    ):
        self.breaker: StreamBreaker | None = None
        self.break_after = break_after
        self.break_for = break_for
        self.scenario = scenario
        self.count = count
        self.tag = tag
        self.interval = interval
        self.record_path = record
        self.tasks: dict[str, asyncio.Task] = {}
        self.ids = itertools.count(1)
        self.sequence = itertools.count(1)

    def record(self, tool: str, ctx: Context, **arguments: Any) -> None:
        if self.record_path is None:
            return
        headers = ctx.headers or {}
        line = {"tool": tool, "arguments": arguments, "authorization": headers.get("authorization")}
        with self.record_path.open("a") as out:
            out.write(json.dumps(line) + "\n")

    async def emit(self, session: Any, subscription_id: str) -> None:
        await asyncio.sleep(FIRST_NOTIFICATION_DELAY)
        with warnings.catch_warnings():
            # The SDK marks logging deprecated (SEP-2577); kubernetes-mcp-server still uses it.
            warnings.simplefilter("ignore")
            send = session.send_log_message
            if self.scenario == "burst":
                for _ in range(self.count):
                    n = next(self.sequence)
                    data = resource_fault(self.tag, n, subscription_id=subscription_id)
                    await send(level="warning", data=data, logger=RESOURCE_FAULTS)
                return
            for _ in range(2):
                n = next(self.sequence)
                data = resource_fault(self.tag, n, subscription_id=subscription_id)
                await send(level="warning", data=data, logger=RESOURCE_FAULTS)
            # `data` may arrive as a JSON string too.
            event = event_fault(self.tag, subscription_id=subscription_id)
            await send(level="warning", data=json.dumps(event), logger=EVENT_FAULTS)
            degraded = {
                "subscriptionId": subscription_id,
                "cluster": "standin-cluster",
                "error": "watch closed: too old resource version",
                "degraded": True,
            }
            await send(level="error", data=degraded, logger=SUBSCRIPTION_ERROR)
            bad = resource_fault(self.tag, 999_999, subscription_id=subscription_id)
            bad["severity"] = "apocalyptic"
            await send(level="warning", data=bad, logger=RESOURCE_FAULTS)
            await send(level="info", data={"msg": "informer synced"}, logger="kubernetes/health")
            periodic = 0
            while self.interval > 0:
                await asyncio.sleep(self.interval)
                periodic += 1
                if periodic == self.break_after and self.breaker is not None:
                    self.break_after = None  # once per process
                    self.breaker.break_for(self.break_for)
                n = next(self.sequence)
                data = resource_fault(self.tag, n, subscription_id=subscription_id)
                await send(level="warning", data=data, logger=RESOURCE_FAULTS)

    def build(self) -> MCPServer:
        server = MCPServer("kubernetes-mcp-server-standin", log_level="WARNING")

        @server.tool()
        async def events_subscribe(
            ctx: Context,
            mode: str = "events",
            cluster: str | None = None,
            namespace: str | None = None,
            namespaces: list[str] | None = None,
            labelSelector: str | None = None,  # noqa: N803 - upstream's argument name
        ) -> str:
            """Subscribe to fault notifications (stand-in for kubernetes-mcp-server)."""
            self.record(
                "events_subscribe",
                ctx,
                mode=mode,
                cluster=cluster,
                namespace=namespace,
                namespaces=namespaces,
                labelSelector=labelSelector,
            )
            subscription_id = f"sub-{self.tag}-{next(self.ids)}"
            task = asyncio.get_running_loop().create_task(self.emit(ctx.session, subscription_id))
            self.tasks[subscription_id] = task
            response = {
                "subscriptionId": subscription_id,
                "cluster": cluster or "standin-cluster",
                "mode": mode,
                "status": "active",
            }
            return (
                f"# Event Subscription Created\n\n{json.dumps(response, indent=2)}\n\n"
                "You will receive event notifications via the logging/message protocol."
            )

        @server.tool()
        async def events_unsubscribe(ctx: Context, subscriptionId: str) -> str:  # noqa: N803
            """Cancel a subscription; idempotent like upstream."""
            self.record("events_unsubscribe", ctx, subscriptionId=subscriptionId)
            task = self.tasks.pop(subscriptionId, None)
            if task is not None:
                task.cancel()
            response = {"subscriptionId": subscriptionId, "cancelled": True, "status": "success"}
            return f"# Subscription Cancelled\n\n{json.dumps(response, indent=2)}"

        return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scenario", choices=["mixed", "burst"], default="mixed")
    parser.add_argument("--count", type=int, default=1000, help="burst: how many faults")
    parser.add_argument("--tag", default="a", help="prefix of every fault id")
    parser.add_argument("--interval", type=float, default=0.0, help="mixed: then one every N s")
    parser.add_argument("--record", type=Path, help="append each tool call here (JSON lines)")
    parser.add_argument("--break-stream-after", type=int, help="mixed: cut the stream after N")
    parser.add_argument("--break-for", type=float, default=4.0, help="seconds the stream is out")
    args = parser.parse_args()
    standin = StandIn(
        scenario=args.scenario,
        count=args.count,
        tag=args.tag,
        interval=args.interval,
        record=args.record,
        break_after=args.break_stream_after,
        break_for=args.break_for,
    )
    server = standin.build()
    standin.breaker = StreamBreaker(server.streamable_http_app())
    uvicorn.run(standin.breaker, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
