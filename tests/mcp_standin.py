"""A kubernetes-mcp-server stand-in for the subscribe_mcp tests, built on the MCP SDK's server side.

It models the fork `randybias/kubernetes-mcp-server-with-events` at HEAD fcfe597 as
../shared/UPSTREAM.md describes it (file:line references there), not our own wishes:

- `events_subscribe(mode, namespaces, labelSelector, involvedKind, involvedName,
  involvedNamespace, type, reason)`; `mode` is `events` (the default) or `faults`, anything else
  is a tool error with upstream's words `invalid mode: must be 'events' or 'faults'`. There is
  no `cluster` argument; unknown arguments are ignored silently. `context` exists only on a
  server with several kubeconfig contexts (`--contexts a,b`): it picks the cluster.
- The answer is text: `# Event Subscription Created` and a JSON object
  `{subscriptionId, cluster, mode, filters, createdAt, status}`.
- `logging/setLevel` is implemented, and a session that has not called it gets no notification
  at all (the Go server drops them).
- `faults` mode: `kubernetes/faults` at level `warning`, the HEAD fault object (faultId the
  first 8 bytes of sha256("<cluster>:<faultType>:<uid>:<container>"), Nodes without a
  namespace, `context` sometimes a JSON-encoded array of container logs, timestamps in RFC 3339
  whole seconds with the local offset). `namespaces`/`labelSelector` are ignored.
- `events` mode: `kubernetes/events` at level `info` (plain Kubernetes events, no faults), then
  one `kubernetes/subscription_error` at level `warning` (degraded). Never in faults mode.
- `--in-cluster`: the server runs in-cluster (the Helm chart) and every record says `cluster: ""`.
- `--no-subscribe-tool`: an MCP server without `events_subscribe` (the upstream
  `containers/kubernetes-mcp-server`, say).

Run as a subprocess so a test can kill it and start it again on the same port:

    python tests/mcp_standin.py --port 8931 --tag a --record /tmp/calls.jsonl

Scenarios (after each subscribe, from a background task on the session's standalone stream):
`faults` (default) sends five faults of the detectors' kinds, then with `--interval` one more
every interval; `burst` sends `--count` CrashLoop faults as fast as it can. Test hooks that are
not upstream behaviour: `--bad-timestamp` adds a fault dated `9999-12-31T23:30:00-01:00` (and a
good one after it); `--break-stream-after N` cuts the notification stream (the client's standing
GET) after N periodic faults and answers 503 to new GETs for `--break-for` seconds.

Every resource uid carries `--tag`, so a test can tell a restarted server's faults from the
first one's. Each `logging/setLevel` and tool call is appended to `--record` as one JSON line
`{"call", "arguments", "authorization"}`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

# Delay before the first notification: the client opens its standalone GET stream right after
# `initialize`; anything sent before it is attached is dropped by the SDK (no event store).
FIRST_NOTIFICATION_DELAY = 0.3

FAULTS = "kubernetes/faults"
EVENTS = "kubernetes/events"
SUBSCRIPTION_ERROR = "kubernetes/subscription_error"
INVALID_MODE = "invalid mode: must be 'events' or 'faults'"
API_VERSIONS = {"Pod": "v1", "Node": "v1", "Deployment": "apps/v1", "Job": "batch/v1"}
CONTAINER_LOGS = [
    {"container": "app", "previous": False, "hasPanic": True,
     "sample": "panic: runtime error: invalid memory address\n\ngoroutine 1 [running]:\n"},
    {"container": "app", "previous": True, "hasPanic": False, "sample": "starting...\n"},
]  # fmt: skip


def local_now() -> str:
    """RFC 3339, whole seconds, the server's local offset (Go's time.Now().Format(RFC3339))."""
    return datetime.now().astimezone().isoformat(timespec="seconds").replace("+00:00", "Z")


def fault_id(cluster: str, fault_type: str, uid: str, container: str = "") -> str:
    """pkg/events/fault_id.go."""
    key = f"{cluster}:{fault_type}:{uid}:{container}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def fault(
    *,
    subscription_id: str,
    cluster: str,
    fault_type: str,
    severity: str,
    kind: str,
    name: str,
    uid: str,
    namespace: str = "",
    container: str = "",
    context: str = "",
    timestamp: str | None = None,
) -> dict:
    """pkg/events/notification.go:104-123: the fault object, empty fields omitted as Go does."""
    resource = {"apiVersion": API_VERSIONS.get(kind, ""), "kind": kind, "name": name}
    if namespace:
        resource["namespace"] = namespace
    resource["uid"] = uid
    data = {
        "subscriptionId": subscription_id,
        "cluster": cluster,
        "faultId": fault_id(cluster, fault_type, uid, container),
        "faultType": fault_type,
        "severity": severity,
        "resource": resource,
    }
    if context:
        data["context"] = context
    data["timestamp"] = timestamp or local_now()
    return data


def detector_faults(tag: str, *, subscription_id: str, cluster: str) -> list[dict]:
    """One fault of each detector's kind, as the detectors fill them."""
    common = {"subscription_id": subscription_id, "cluster": cluster}
    return [
        fault(**common, fault_type="CrashLoop", severity="critical", kind="Pod",
              name=f"api-{tag}", namespace="payments", uid=f"uid-api-{tag}", container="app",
              context="Container entered CrashLoopBackOff state, restart count: 3, waiting "
              "message: back-off 5m0s restarting failed container, last exit code: 1"),
        fault(**common, fault_type="NodeUnhealthy", severity="critical", kind="Node",
              name=f"node-{tag}", uid=f"uid-node-{tag}",
              context="Node became unhealthy: Ready=False, reason: KubeletNotReady"),
        fault(**common, fault_type="CrashLoop", severity="critical", kind="Pod",
              name=f"web-{tag}", namespace="shop", uid=f"uid-web-{tag}", container="app",
              context=json.dumps(CONTAINER_LOGS, separators=(",", ":"))),
        fault(**common, fault_type="PodCrash", severity="warning", kind="Pod",
              name=f"worker-{tag}", namespace="batch", uid=f"uid-worker-{tag}", container="w",
              context="Container crashed with exit code 137, reason: OOMKilled"),
        fault(**common, fault_type="DeploymentFailure", severity="critical", kind="Deployment",
              name=f"ledger-{tag}", namespace="payments", uid=f"uid-ledger-{tag}",
              context="Deployment rollout failed: ProgressDeadlineExceeded"),
    ]  # fmt: skip


def job_fault(tag: str, n: int, *, subscription_id: str, cluster: str, **extra: Any) -> dict:
    return fault(subscription_id=subscription_id, cluster=cluster, fault_type="JobFailure",
                 severity="warning", kind="Job", name=f"job-{tag}-{n}", namespace="batch",
                 uid=f"uid-job-{tag}-{n}",
                 context="Job failed, reason: BackoffLimitExceeded", **extra)  # fmt: skip


def kubernetes_event(n: int, *, subscription_id: str, cluster: str) -> dict:
    """pkg/events/notification.go EventNotification (events mode)."""
    return {
        "subscriptionId": subscription_id,
        "cluster": cluster,
        "event": {
            "namespace": "default",
            "timestamp": local_now(),
            "type": "Warning",
            "reason": "BackOff",
            "message": f"Back-off restarting failed container ({n})",
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": f"web-{n}",
                "namespace": "default",
                "uid": f"uid-event-{n}",
            },  # fmt: skip
            "count": n,
        },
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

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.breaker: StreamBreaker | None = None
        self.break_after: int | None = args.break_stream_after
        self.contexts: list[str] = args.contexts.split(",") if args.contexts else []
        if args.in_cluster:
            self.default_cluster = ""
        else:
            self.default_cluster = self.contexts[0] if self.contexts else "kind-standin"
        self.tasks: dict[str, asyncio.Task] = {}
        self.ids = itertools.count(1)
        self.sequence = itertools.count(1)
        self.leveled: set[str] = set()  # MCP sessions (their ids) that called logging/setLevel
        self.dropped = 0

    @staticmethod
    def headers(ctx: Any) -> Any:
        request = getattr(ctx, "request", None)
        return getattr(request, "headers", None) or getattr(ctx, "headers", None) or {}

    def record(self, call: str, ctx: Any, **arguments: Any) -> None:
        if self.args.record is None:
            return
        headers = self.headers(ctx)
        line = {"call": call, "arguments": arguments, "authorization": headers.get("authorization")}
        with self.args.record.open("a") as out:
            out.write(json.dumps(line) + "\n")

    async def send(self, session: Any, level: str, logger: str, data: Any) -> None:
        session, session_id = session
        if session_id not in self.leveled:
            self.dropped += 1  # the Go server drops what a session without a level would get
            return
        with warnings.catch_warnings():
            # The SDK marks logging deprecated (SEP-2577); kubernetes-mcp-server still uses it.
            warnings.simplefilter("ignore")
            await session.send_log_message(level=level, data=data, logger=logger)

    async def emit(
        self, session: tuple[Any, str], subscription_id: str, mode: str, cluster: str
    ) -> None:
        await asyncio.sleep(FIRST_NOTIFICATION_DELAY)
        ids = {"subscription_id": subscription_id, "cluster": cluster}
        tag = self.args.tag
        if mode == "events":
            for n in range(1, 3):
                await self.send(session, "info", EVENTS, kubernetes_event(n, **ids))
            degraded = {"subscriptionId": subscription_id, "cluster": cluster,
                        "error": "Watch connection failed after maximum retry attempts",
                        "degraded": True}  # fmt: skip
            await self.send(session, "warning", SUBSCRIPTION_ERROR, degraded)
            return
        if self.args.scenario == "burst":
            for _ in range(self.args.count):
                data = job_fault(tag, next(self.sequence), **ids)
                await self.send(session, "warning", FAULTS, data)
            return
        for data in detector_faults(tag, **ids):
            await self.send(session, "warning", FAULTS, data)
        if self.args.bad_timestamp:
            bad = job_fault(tag, 0, timestamp="9999-12-31T23:30:00-01:00", **ids)
            await self.send(session, "warning", FAULTS, bad)
            await self.send(session, "warning", FAULTS, job_fault(tag, 10_000, **ids))
        periodic = 0
        while self.args.interval > 0:
            await asyncio.sleep(self.args.interval)
            periodic += 1
            if periodic == self.break_after and self.breaker is not None:
                self.break_after = None  # once per process
                self.breaker.break_for(self.args.break_for)
            data = job_fault(tag, next(self.sequence), **ids)
            await self.send(session, "warning", FAULTS, data)

    def subscribe(self, ctx: Context, mode: str, context: str | None, filters: dict) -> str:
        """manager.go: validate, create, start the watchers (here: the emitting task)."""
        if mode not in ("events", "faults"):
            raise ToolError(INVALID_MODE)
        cluster = self.default_cluster
        if context is not None and self.contexts:
            if context not in self.contexts:
                raise ToolError(f"context {context!r} not found in kubeconfig")
            cluster = context
        n = next(self.ids)
        digest = hashlib.sha256(f"{self.args.tag}-{n}".encode()).hexdigest()[:8]
        subscription_id = f"sub-{digest}"
        task = asyncio.get_running_loop().create_task(
            self.emit(
                (ctx.session, self.headers(ctx).get("mcp-session-id")),
                subscription_id,
                mode,
                cluster,
            )
        )
        self.tasks[subscription_id] = task
        response = {
            "subscriptionId": subscription_id,
            "cluster": cluster,
            "mode": mode,
            "filters": {k: v for k, v in filters.items() if v},
            "createdAt": local_now(),
            "status": "active",
        }
        return (
            f"# Event Subscription Created\n\n{json.dumps(response, indent=2)}\n\n"
            "You will receive event notifications via the logging/message protocol."
        )

    def build(self) -> MCPServer:
        server = MCPServer("kubernetes-mcp-server-standin", log_level="WARNING")

        async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
            self.leveled.add(self.headers(ctx).get("mcp-session-id"))
            self.record("logging/setLevel", ctx, level=params.level)
            return types.EmptyResult()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server._lowlevel_server.add_request_handler(  # noqa: SLF001 - no public hook
                "logging/setLevel", types.SetLevelRequestParams, set_level
            )

        if not self.args.no_subscribe_tool:
            self._add_subscribe_tool(server)

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

    def _add_subscribe_tool(self, server: MCPServer) -> None:
        if self.contexts:

            @server.tool(name="events_subscribe")
            async def events_subscribe_multi(
                ctx: Context,
                mode: str = "events",
                context: str | None = None,
                namespaces: list[str] | None = None,
                labelSelector: str | None = None,  # noqa: N803 - upstream's argument name
            ) -> str:
                """Subscribe to Kubernetes events or faults (several kubeconfig contexts)."""
                arguments = {"mode": mode, "context": context, "namespaces": namespaces,
                             "labelSelector": labelSelector}  # fmt: skip
                self.record("events_subscribe", ctx, **arguments)
                filters = {"namespaces": namespaces, "labelSelector": labelSelector}
                return self.subscribe(ctx, mode, context, filters)

            return

        @server.tool()
        async def events_subscribe(
            ctx: Context,
            mode: str = "events",
            namespaces: list[str] | None = None,
            labelSelector: str | None = None,  # noqa: N803 - upstream's argument name
        ) -> str:
            """Subscribe to Kubernetes events or faults."""
            arguments = {"mode": mode, "namespaces": namespaces, "labelSelector": labelSelector}
            self.record("events_subscribe", ctx, **arguments)
            filters = {"namespaces": namespaces, "labelSelector": labelSelector}
            return self.subscribe(ctx, mode, None, filters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scenario", choices=["faults", "burst"], default="faults")
    parser.add_argument("--count", type=int, default=1000, help="burst: how many faults")
    parser.add_argument("--tag", default="a", help="part of every resource uid")
    parser.add_argument("--interval", type=float, default=0.0, help="then one fault every N s")
    parser.add_argument("--record", type=Path, help="append each call here (JSON lines)")
    parser.add_argument("--in-cluster", action="store_true", help='every record: cluster ""')
    parser.add_argument("--contexts", help="several kubeconfig contexts, comma-separated")
    parser.add_argument("--no-subscribe-tool", action="store_true")
    parser.add_argument("--bad-timestamp", action="store_true", help="test hook: year 9999")
    parser.add_argument("--break-stream-after", type=int, help="cut the stream after N")
    parser.add_argument("--break-for", type=float, default=4.0, help="seconds the stream is out")
    args = parser.parse_args()
    standin = StandIn(args)
    server = standin.build()
    standin.breaker = StreamBreaker(server.streamable_http_app())
    uvicorn.run(standin.breaker, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
