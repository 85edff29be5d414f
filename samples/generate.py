"""Realistic kubernetes-mcp-server fault events, for the demo, the tests and the benchmark.

    python samples/generate.py     # rewrites samples/events.jsonl, arriving.jsonl, bad-events.jsonl

Deterministic for a seed. Three clusters (two production, one staging), the namespaces and
workloads an SRE sees, every fault type with the container log samples it leaves behind, in
every upstream shape: the bare `kubernetes/resource-faults` payload (camelCase and snake_case),
the `kubernetes/faults` event shape, and both inside MCP `notifications/message` envelopes with
`data` as an object or as a JSON string. The demo file also holds recurrences (same fault, later
timestamp), replays (the same record sent twice) and a few notifications that are no fault.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent
START = datetime(2025, 12, 20, 6, 0, tzinfo=UTC)

CLUSTERS = {
    "prod-us-east-1": ["payments", "checkout", "search", "ingress-nginx", "kube-system"],
    "prod-eu-west-1": ["payments", "orders", "data-pipeline", "monitoring", "kube-system"],
    "staging-us-west-2": ["payments", "checkout", "ml-inference", "ci-runners", "kube-system"],
}
WORKLOADS = {
    "payments": ["api", "ledger-worker", "fraud-scorer"],
    "checkout": ["web", "cart-service", "pricing"],
    "search": ["indexer", "query-api"],
    "orders": ["order-service", "outbox-relay"],
    "data-pipeline": ["spark-driver", "kafka-connect", "airflow-scheduler"],
    "monitoring": ["prometheus", "alertmanager", "grafana"],
    "ingress-nginx": ["ingress-nginx-controller"],
    "kube-system": ["coredns", "kube-proxy", "aws-node", "ebs-csi-controller"],
    "ml-inference": ["triton", "feature-store"],
    "ci-runners": ["gitlab-runner", "buildkitd"],
}

PANIC = """panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x6f1c2a]

goroutine 1 [running]:
main.(*Server).loadConfig(0x0)
\t/app/cmd/server/main.go:87 +0x2a
main.main()
\t/app/cmd/server/main.go:41 +0x1c5"""
MISSING_ENV = """2025-12-20T15:29:58.114Z INFO  starting {service} version=v2.14.3
2025-12-20T15:29:58.342Z ERROR config: required environment variable DATABASE_URL is not set
2025-12-20T15:29:58.343Z FATAL exiting with status 1"""
JAVA_OOM = """Exception in thread "main" java.lang.OutOfMemoryError: Java heap space
\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)
\tat org.apache.spark.sql.execution.SparkPlan.executeCollect(SparkPlan.scala:421)
\tat com.example.pipeline.DailyRollup.run(DailyRollup.scala:118)"""
PY_TRACE = """Traceback (most recent call last):
  File "/srv/app/worker.py", line 212, in handle
    conn = psycopg.connect(settings.DSN, connect_timeout=5)
psycopg.OperationalError: connection to server at "10.42.7.19", port 5432 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?"""
PROBE = """2025-12-20T15:30:01.002Z WARN  http: slow request path=/healthz duration=4.97s
2025-12-20T15:30:06.011Z WARN  db pool exhausted: 50/50 connections in use, waiting"""

# What each workload runs, so that its log samples look like its own: a Go program such as
# kube-proxy that is OOM-killed leaves its last klog lines, never a Java stack trace.
JVM = {"spark-driver", "kafka-connect", "indexer"}
PYTHON = {"airflow-scheduler", "fraud-scorer", "feature-store", "ledger-worker", "outbox-relay"}
MESHED = {"payments", "checkout", "search", "orders"}  # namespaces with an istio-proxy sidecar
GO_OOM = (
    'I1220 15:29:41.730518       1 {service}.go:805] "Syncing rules" reason="endpoints changed"\n'
    'I1220 15:29:52.118245       1 trace.go:236] Trace[1843510093]: "List" total: 10013ms\n'
    'I1220 15:29:58.902114       1 {service}.go:1494] "Reloading data" objects=19633'
)
PY_OOM = """2025-12-20T15:29:51.402Z INFO  loading batch 1182 rows=2500000
2025-12-20T15:29:58.117Z INFO  building feature matrix shape=(2500000, 412) dtype=float64"""
PY_CRASH = """Traceback (most recent call last):
  File "/srv/app/main.py", line 41, in <module>
    settings = load_settings(os.environ)
  File "/srv/app/config.py", line 87, in load_settings
    return Settings(dsn=env["DATABASE_URL"], broker=env["BROKER_URL"])
KeyError: 'BROKER_URL'"""
JAVA_CRASH = """Exception in thread "main" java.lang.NullPointerException: config.brokers is null
\tat com.example.Main.start(Main.java:87)
\tat com.example.Main.main(Main.java:41)"""
GO_DEPENDENCY = (
    '{{"level":"error","ts":"2025-12-20T15:29:58.342Z","msg":"cannot reach the database",'
    '"error":"dial tcp 10.42.7.19:5432: connect: connection refused"}}\n'
    '{{"level":"fatal","ts":"2025-12-20T15:29:58.343Z","msg":"start-up checks failed"}}'
)
JAVA_DEPENDENCY = """org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node
Caused by: java.net.ConnectException: Connection refused: kafka-0.kafka:9092"""

# (fault type, kind, severity, event reason, message, log sample or None, previous container?)
SCENARIOS = [
    ("CrashLoop", "Pod", "critical", "BackOff",
     "Back-off restarting failed container {container} in pod {name}", PANIC, True),
    ("CrashLoop", "Pod", "error", "BackOff",
     "Back-off restarting failed container {container} in pod {name}", MISSING_ENV, True),
    ("OOMKilled", "Pod", "high", "OOMKilling",
     "Memory cgroup out of memory: Killed process 4242 ({container})", JAVA_OOM, True),
    ("ImagePullBackOff", "Pod", "warning", "Failed",
     'Failed to pull image "registry.internal/{container}:v2.14.4": not found', None, False),
    ("FailedScheduling", "Pod", "medium", "FailedScheduling",
     "0/12 nodes are available: 3 Insufficient memory, 9 node(s) had untolerated taint", None,
     False),
    ("ProbeFailure", "Pod", "warning", "Unhealthy",
     "Readiness probe failed: Get \"http://10.42.3.17:8080/healthz\": context deadline exceeded",
     PROBE, False),
    ("CrashLoop", "Pod", "high", "BackOff",
     "Back-off restarting failed container {container} in pod {name}", PY_TRACE, True),
    ("DeploymentRolloutStalled", "Deployment", "high", "ProgressDeadlineExceeded",
     'ReplicaSet "{name}" has timed out progressing', None, False),
    ("StatefulSetUnavailable", "StatefulSet", "critical", "FailedCreate",
     "create Pod {name}-2 in StatefulSet {name} failed: exceeded quota", None, False),
    ("JobFailed", "Job", "medium", "BackoffLimitExceeded",
     "Job has reached the specified backoff limit", PY_TRACE, False),
    ("NodeNotReady", "Node", "critical", "NodeNotReady",
     "Node {name} status is now: NodeNotReady", None, False),
    ("DiskPressure", "Node", "info", "EvictionThresholdMet",
     "Attempting to reclaim ephemeral-storage", None, False),
    ("PVCPending", "PersistentVolumeClaim", "low", "ProvisioningFailed",
     "failed to provision volume with StorageClass \"gp3\": rpc error: code = ResourceExhausted",
     None, False),
    ("DaemonSetMisscheduled", "DaemonSet", "Medium", "FailedDaemonPod",
     "Found failed daemon pod on node ip-10-0-3-17, will try to kill it", None, False),
]  # fmt: skip
API_VERSIONS = {
    "Pod": "v1",
    "Node": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
}
SHAPES = (
    ("resource-faults", 40),
    ("resource-faults-snake", 8),
    ("envelope", 20),
    ("envelope-string", 10),
    ("faults", 7),
    ("faults-envelope", 15),
)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(*parts: object, n: int = 16) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:n]


def _resource(rng: random.Random, cluster: str, namespace: str, kind: str, run: str) -> dict:
    workload = rng.choice(WORKLOADS[namespace])
    if kind == "Node":
        name = f"ip-10-{rng.randint(0, 3)}-{rng.randint(0, 255)}-{rng.randint(1, 254)}.ec2.internal"
        namespace = ""
    elif kind == "Pod":
        name = f"{workload}-{_hex(run, cluster, workload, rng.random(), n=10)[:10]}-{_hex(rng.random(), n=5)}"  # noqa: E501
    elif kind == "PersistentVolumeClaim":
        name = f"data-{workload}-{rng.randint(0, 2)}"
    else:
        name = workload
    return {
        "apiVersion": API_VERSIONS[kind],
        "kind": kind,
        "name": name,
        "namespace": namespace,
        # A new object each time (a re-created object gets a new uid too).
        "uid": f"{_hex(run, cluster, namespace, name, n=8)}-{_hex(name, n=4)}-4{_hex(kind, n=3)}"
        f"-a{_hex(cluster, n=3)}-{_hex(run, name, rng.random(), n=12)}",
        "container": workload,
    }


def _runtime_sample(sample: str, container: str) -> str:
    """The scenario's log sample as this workload's runtime would write it."""
    runtime = "jvm" if container in JVM else "python" if container in PYTHON else "go"
    by_runtime = {
        JAVA_OOM: {"go": GO_OOM, "python": PY_OOM},
        PANIC: {"python": PY_CRASH, "jvm": JAVA_CRASH},
        PY_TRACE: {"go": GO_DEPENDENCY, "jvm": JAVA_DEPENDENCY},
    }
    return by_runtime.get(sample, {}).get(runtime, sample)


def _logs(rng: random.Random, scenario: tuple, resource: dict) -> list[dict]:
    sample, previous = scenario[5], scenario[6]
    container = resource["container"]
    if sample is None or rng.random() < 0.15:
        return []
    text = _runtime_sample(sample, container).format(service=container)
    logs = [{"container": container, "previous": previous, "hasPanic": "panic:" in text,
             "sample": text}]  # fmt: skip
    if rng.random() < 0.3 and resource["namespace"] in MESHED:  # draws as before either way
        logs.append({"container": "istio-proxy", "previous": False, "hasPanic": False,
                     "sample": "[2025-12-20T15:30:00.117Z] \"GET /healthz HTTP/1.1\" 503 UF "
                               "upstream connect error or disconnect/reset before headers"},
                    )  # fmt: skip
    return logs


def _envelope(data: dict | str, logger: str, level: str) -> dict:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": level, "logger": logger, "data": data},
    }


def _one(rng: random.Random, fault: dict, timestamp: datetime, count: int, shape: str) -> dict:
    scenario, resource, cluster = fault["scenario"], fault["resource"], fault["cluster"]
    fault_type, _kind, severity, reason, message = scenario[:5]
    message = message.format(container=resource["container"], name=resource["name"])
    logs = _logs(rng, scenario, resource)
    obj = {k: resource[k] for k in ("apiVersion", "kind", "name", "namespace", "uid")}
    if shape.startswith("faults"):
        payload = {
            "subscriptionId": fault["subscription"],
            "cluster": cluster,
            "event": {
                "namespace": resource["namespace"],
                "timestamp": _rfc3339(timestamp),
                "type": "Warning",
                "reason": reason,
                "message": message,
                "involvedObject": obj,
                "count": count,
                "labels": {"app.kubernetes.io/name": resource["container"]},
            },
            "logs": logs,
        }
        if shape == "faults-envelope":
            return _envelope(payload, "kubernetes/faults", fault["level"])
        return payload
    payload = {
        "faultId": fault["fault_id"],
        "subscriptionId": fault["subscription"],
        "cluster": cluster,
        "faultType": fault_type,
        "severity": severity,
        "resource": obj,
        "context": message,
        "timestamp": _rfc3339(timestamp),
        "logs": logs,
    }
    if count > 1:
        payload["restartCount"] = count
    if shape == "resource-faults-snake":
        payload = {
            "fault_id": payload["faultId"],
            "subscription_id": payload["subscriptionId"],
            "cluster": cluster,
            "fault_type": fault_type,
            "severity": severity.upper() if rng.random() < 0.5 else severity,
            "resource_api_version": obj["apiVersion"],
            "resource_kind": obj["kind"],
            "resource_name": obj["name"],
            "resource_namespace": obj["namespace"],
            "resource_uid": obj["uid"],
            "context": message,
            "timestamp": payload["timestamp"],
            "logs": logs,
        }
    if shape == "envelope":
        return _envelope(payload, "kubernetes/resource-faults", fault["level"])
    if shape == "envelope-string":
        return _envelope(json.dumps(payload), "kubernetes/resource-faults", fault["level"])
    return payload


def generate(
    n: int,
    *,
    seed: int = 20251220,
    run: str = "",
    recurrence: float = 0.2,
    replay: float = 0.03,
    ignored: float = 0.02,
) -> Iterator[dict]:
    """`n` records. With recurrence/replay/ignored at 0 every record is a new fault (the bench)."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    shapes = [shape for shape, weight in SHAPES for _ in range(weight)]
    faults: deque[dict] = deque(maxlen=50)  # recurrences pick among the latest faults
    last: dict | None = None
    moment = START
    for i in range(n):
        moment += timedelta(seconds=rng.randint(1, 90))
        roll = rng.random()
        if last is not None and roll < replay:
            yield last  # the same record again: upstream re-sent it
            continue
        if roll < replay + ignored:
            cluster = rng.choice(list(CLUSTERS))
            yield _envelope(
                {"subscriptionId": f"sub-{_hex(cluster, n=8)}", "cluster": cluster,
                 "error": "watch channel closed: too old resource version: 48213 (48790)",
                 "degraded": rng.random() < 0.5},
                "kubernetes/subscription_error", "error",
            )  # fmt: skip
            continue
        if faults and roll < replay + ignored + recurrence:
            fault = rng.choice(faults)
            fault["count"] += rng.randint(1, 4)
        else:
            cluster = rng.choice(list(CLUSTERS))
            namespace = rng.choice(CLUSTERS[cluster])
            scenario = rng.choice(SCENARIOS)
            resource = _resource(rng, cluster, namespace, scenario[1], run)
            fault = {
                "cluster": cluster,
                "scenario": scenario,
                "resource": resource,
                "fault_id": _hex(run, i, cluster, resource["uid"], scenario[0]),
                "subscription": f"sub-{run}{_hex(cluster, n=8)}",
                "level": {"critical": "error", "high": "error", "info": "info"}.get(
                    scenario[2].lower(), "warning"
                ),
                "shape": rng.choice(shapes),
                "count": 1,
            }
            faults.append(fault)
        last = _one(rng, fault, moment, fault["count"], fault["shape"])
        yield last


BAD_RECORDS = [
    '{"cluster": "prod-us-east-1", "faultType": "CrashLoop", "severity": "critical", '
    '"timestamp": "2025-12-20T15:30:00Z"}',
    '{"faultId": "bad00000000000a1", "cluster": "prod-us-east-1", "faultType": "CrashLoop", '
    '"severity": "urgent", "timestamp": "2025-12-20T15:30:00Z"}',
    '{"faultId": "bad00000000000a2", "cluster": "prod-eu-west-1", "faultType": "OOMKilled", '
    '"severity": "high", "timestamp": "yesterday"}',
    '{"faultId": "bad00000000000a3", "cluster": "", "faultType": "OOMKilled", '
    '"severity": "high", "timestamp": "2025-12-20T15:30:00Z"}',
    '{"faultId": "bad00000000000a4", "cluster": "staging-us-west-2", "faultType": "CrashLoop", '
    '"severity": "low", "timestamp": "2025-12-20T15:30:00Z"',
    '{"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "warning", '
    '"logger": "kubernetes/resource-faults", "data": "{not json"}}',
    '{"faultId": "ok000000000000a5", "cluster": "staging-us-west-2", "faultType": "CrashLoop", '
    '"severity": "WARNING", "resource": {"kind": "Pod", "name": "web-5d9c7-x2x8q", '
    '"namespace": "checkout"}, "timestamp": "2025-12-20T15:30:00+01:00"}',
]


def write_samples() -> None:
    with open(SAMPLES / "events.jsonl", "w", encoding="utf-8") as out:
        for record in generate(240):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    # New faults for `make demo` to feed in after the first drain: the dashboard then shows
    # incidents pending and investigating while a slow worker takes them one by one.
    with open(SAMPLES / "arriving.jsonl", "w", encoding="utf-8") as out:
        arriving = generate(12, seed=20251221, run="live", recurrence=0, replay=0, ignored=0)
        for record in arriving:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    (SAMPLES / "bad-events.jsonl").write_text("\n".join(BAD_RECORDS) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_samples()
    sys.stdout.write(f"wrote events.jsonl, arriving.jsonl and bad-events.jsonl in {SAMPLES}\n")
