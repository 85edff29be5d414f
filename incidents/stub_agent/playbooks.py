"""The stub agent's knowledge: one playbook per fault type, and upstream's other names for them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hypothesis:
    cause: str
    confidence: int  # percent
    evidence_for: str
    check: str
    patterns: tuple[str, ...] = ()  # log patterns that make it more likely


@dataclass(frozen=True)
class Playbook:
    title: str
    impact: str
    hypotheses: tuple[Hypothesis, ...]
    remediation: tuple[str, ...]
    commands: tuple[str, ...]


PLAYBOOKS: dict[str, Playbook] = {
    "CrashLoop": Playbook(
        title="container restarting in a crash loop",
        impact="The pod is not Ready between restarts; its Service has fewer endpoints.",
        hypotheses=(
            Hypothesis(
                "Missing or wrong configuration (env var, Secret or ConfigMap key)",
                55,
                "the process exits within seconds of starting, before serving traffic",
                "compare the container's env and mounted keys with the last working revision",
                ("missing", "not set", "no such file", "config", "secret", "env"),
            ),
            Hypothesis(
                "Application panic on start-up after a new release",
                30,
                "restarts began with the latest rollout",
                "`kubectl rollout history` and the previous container's log",
                ("panic", "traceback", "exception", "segmentation"),
            ),
            Hypothesis(
                "A dependency is unreachable (database, broker, DNS)",
                15,
                "start-up checks fail while connecting",
                "test the dependency from a debug pod in the same namespace",
                ("connection refused", "timeout", "no such host", "dial tcp"),
            ),
        ),
        remediation=(
            "Read the previous container's log to confirm the exit reason.",
            "If configuration is missing, restore the key and restart the rollout.",
            "If the latest release is at fault, roll back to the previous revision.",
        ),
        commands=(
            "kubectl -n {namespace} logs {name} --previous --tail=200",
            "kubectl -n {namespace} describe pod {name}",
            "kubectl -n {namespace} rollout undo deployment/<owner>  # if the release is at fault",
        ),
    ),
    "PodCrash": Playbook(
        title="container terminated with an error",
        impact="Requests served by this pod failed while it restarted.",
        hypotheses=(
            Hypothesis(
                "Unhandled error in the application (panic / uncaught exception)",
                60,
                "the container exited non-zero without being OOM-killed",
                "the stack trace in the previous container's log",
                ("panic", "traceback", "exception", "fatal"),
            ),
            Hypothesis(
                "Liveness probe killed a slow but healthy process",
                25,
                "restarts line up with probe failures in the pod's events",
                "probe timing in `kubectl describe pod` against response latency",
                ("liveness", "probe", "timeout"),
            ),
            Hypothesis(
                "Node-level disruption (eviction, kernel, runtime)",
                15,
                "other pods on the same node restarted at the same time",
                "events of the node the pod ran on",
                ("evicted", "node", "runtime"),
            ),
        ),
        remediation=(
            "Capture the stack trace and open a bug with the owning team.",
            "If the probe is the killer, relax its timeoutSeconds / failureThreshold.",
            "Keep the replica count up so one crash does not drop capacity.",
        ),
        commands=(
            "kubectl -n {namespace} logs {name} --previous",
            "kubectl -n {namespace} get events --field-selector involvedObject.name={name}",
        ),
    ),
    "OOMKilled": Playbook(
        title="container killed for exceeding its memory limit",
        impact="In-flight requests were dropped; repeated kills cause a crash loop.",
        hypotheses=(
            Hypothesis(
                "Memory limit too low for the current workload",
                50,
                "usage climbs steadily to the limit under normal traffic",
                "container_memory_working_set_bytes against the limit over 24 h",
                ("oomkilled", "memory", "limit"),
            ),
            Hypothesis(
                "Memory leak introduced by a recent release",
                35,
                "usage grows without bound after each restart",
                "compare heap profiles before and after the last rollout",
                ("leak", "heap", "allocation"),
            ),
            Hypothesis(
                "A traffic spike or a batch larger than usual",
                15,
                "kills coincide with request or queue spikes",
                "request rate and queue depth at the time of the kill",
                ("batch", "spike", "queue"),
            ),
        ),
        remediation=(
            "Raise the memory limit (and request) by 25-50% as a stop-gap.",
            "Profile memory on a canary to tell a leak from growth.",
            "Add a memory alert at 80% of the limit so the next kill is predicted.",
        ),
        commands=(
            "kubectl -n {namespace} top pod {name} --containers",
            "kubectl -n {namespace} get pod {name} -o jsonpath='{{.spec.containers[*].resources}}'",
        ),
    ),
    "NodeUnhealthy": Playbook(
        title="node reporting NotReady or under pressure",
        impact="Pods on the node may be evicted; new pods are not scheduled there.",
        hypotheses=(
            Hypothesis(
                "Kubelet lost contact with the control plane (network or kubelet crash)",
                45,
                "the Ready condition went Unknown rather than False",
                "kubelet service status and logs on the node",
                ("kubelet", "unknown", "heartbeat", "network"),
            ),
            Hypothesis(
                "Disk or memory pressure on the node",
                40,
                "DiskPressure / MemoryPressure conditions are True",
                "`kubectl describe node` conditions and image garbage collection",
                ("pressure", "disk", "eviction", "memory"),
            ),
            Hypothesis(
                "Underlying VM failure or maintenance",
                15,
                "the cloud provider reports a host event",
                "the provider's instance status checks",
                ("maintenance", "terminated", "instance"),
            ),
        ),
        remediation=(
            "Cordon the node so nothing new lands on it.",
            "Drain it once workloads have somewhere to go; replace the VM if it does not recover.",
            "If pressure is the cause, clean images / logs and review eviction thresholds.",
        ),
        commands=(
            "kubectl describe node {name}",
            "kubectl cordon {name}",
            "kubectl drain {name} --ignore-daemonsets --delete-emptydir-data",
        ),
    ),
    "DeploymentFailure": Playbook(
        title="rollout not progressing",
        impact="The new revision is not serving; the old ReplicaSet still carries traffic.",
        hypotheses=(
            Hypothesis(
                "New pods fail their readiness probe",
                50,
                "the new ReplicaSet has pods that never become Ready",
                "readiness probe events of the new pods",
                ("readiness", "probe", "not ready"),
            ),
            Hypothesis(
                "Insufficient cluster capacity or quota for surge pods",
                30,
                "new pods are Pending with FailedScheduling",
                "events of the Pending pods and the namespace's ResourceQuota",
                ("insufficient", "quota", "failedscheduling", "pending"),
            ),
            Hypothesis(
                "Bad image or configuration in the new revision",
                20,
                "new pods crash or cannot pull their image",
                "status of the new ReplicaSet's pods",
                ("image", "crash", "config"),
            ),
        ),
        remediation=(
            "Pause or undo the rollout to stop the bleeding.",
            "Fix the failing probe or free capacity, then resume.",
            "Set progressDeadlineSeconds so the next stall is reported sooner.",
        ),
        commands=(
            "kubectl -n {namespace} rollout status deployment/{name} --timeout=30s",
            "kubectl -n {namespace} rollout undo deployment/{name}",
        ),
    ),
    "JobFailure": Playbook(
        title="job reached its backoff limit",
        impact="The job's work was not done; downstream consumers may be missing data.",
        hypotheses=(
            Hypothesis(
                "The job's command fails on its input",
                50,
                "every attempt exits non-zero at the same step",
                "the log of the last failed pod",
                ("error", "exit", "failed", "invalid"),
            ),
            Hypothesis(
                "A dependency was unavailable during the run window",
                30,
                "attempts fail while connecting, not while processing",
                "the dependency's availability at the job's start time",
                ("connection", "timeout", "refused", "unavailable"),
            ),
            Hypothesis(
                "activeDeadlineSeconds too short for the data volume",
                20,
                "attempts are killed at the deadline",
                "job duration history against the deadline",
                ("deadline", "killed"),
            ),
        ),
        remediation=(
            "Read the last attempt's log and fix the input or the code.",
            "Re-run the job once the cause is fixed: `kubectl create job --from=cronjob/...`.",
            "Alert on job failure to the owning team, not the platform on-call.",
        ),
        commands=(
            "kubectl -n {namespace} describe job {name}",
            "kubectl -n {namespace} logs job/{name} --tail=200",
        ),
    ),
    "ImagePullBackOff": Playbook(
        title="image cannot be pulled",
        impact="The pod never starts; a rollout with this image stalls.",
        hypotheses=(
            Hypothesis(
                "The tag does not exist (typo or image not pushed yet)",
                50,
                "the registry answers 'manifest unknown' / 'not found'",
                "list the repository's tags in the registry",
                ("manifest unknown", "not found", "tag"),
            ),
            Hypothesis(
                "Registry credentials missing or expired (imagePullSecrets)",
                35,
                "the registry answers 401/403",
                "the pull secret referenced by the pod's service account",
                ("unauthorized", "denied", "401", "403", "authentication"),
            ),
            Hypothesis(
                "Registry unreachable or rate-limited",
                15,
                "pulls time out or return 429",
                "pull the image from a node by hand",
                ("timeout", "429", "toomanyrequests", "i/o"),
            ),
        ),
        remediation=(
            "Correct the image reference or push the missing tag.",
            "Refresh the pull secret if the registry refused the credentials.",
            "Mirror critical images to a registry inside the cluster's network.",
        ),
        commands=(
            "kubectl -n {namespace} describe pod {name} | grep -A5 Events",
            "kubectl -n {namespace} get pod {name} -o jsonpath='{{.spec.containers[*].image}}'",
        ),
    ),
    "FailedScheduling": Playbook(
        title="pod cannot be scheduled",
        impact="The workload runs below its desired replicas until the pod is placed.",
        hypotheses=(
            Hypothesis(
                "Not enough allocatable CPU or memory on any eligible node",
                45,
                "the scheduler reports Insufficient cpu / memory",
                "`kubectl describe pod` events and node allocatable vs requested",
                ("insufficient", "cpu", "memory"),
            ),
            Hypothesis(
                "Node selector, affinity or taints exclude every node",
                30,
                "the scheduler reports node(s) didn't match / had untolerated taint",
                "the pod's nodeSelector, affinity and tolerations against node labels",
                ("affinity", "selector", "taint", "didn't match"),
            ),
            Hypothesis(
                "A PersistentVolumeClaim is unbound (no volume, wrong storage class or zone)",
                25,
                "the scheduler reports unbound immediate PersistentVolumeClaims",
                "`kubectl get pvc` status and the StorageClass's provisioner events",
                ("persistentvolumeclaim", "pvc", "unbound", "storageclass", "volume"),
            ),
        ),
        remediation=(
            "Read the FailedScheduling event: it names the predicate that rejected each node.",
            "Free or add capacity (cluster autoscaler limits, node pool size), or lower requests.",
            "For volumes, fix the claim's storage class or zone so it can bind.",
        ),
        commands=(
            "kubectl -n {namespace} describe {kind} {name}",
            "kubectl describe nodes | grep -A8 'Allocated resources'",
            "kubectl -n {namespace} get pvc",
        ),
    ),
    "ProbeFailure": Playbook(
        title="health probe failing",
        impact="Failing readiness removes the pod from its Service; failing liveness restarts it.",
        hypotheses=(
            Hypothesis(
                "The application is overloaded and answers the probe too slowly",
                45,
                "probe failures say 'context deadline exceeded' / timeout",
                "latency and CPU throttling of the container at the time",
                ("deadline exceeded", "timeout", "throttl"),
            ),
            Hypothesis(
                "A dependency the health endpoint checks is down",
                35,
                "the endpoint answers 5xx rather than timing out",
                "the health endpoint's response body and the dependency's status",
                ("503", "500", "upstream", "connection refused"),
            ),
            Hypothesis(
                "Probe misconfigured (port, path or initialDelaySeconds)",
                20,
                "failures from the first start, connection refused on the probe port",
                "the probe spec against the container's listening port and path",
                ("refused", "404", "port"),
            ),
        ),
        remediation=(
            "Check whether the endpoint is slow or failing: curl it from inside the pod.",
            "If slow, raise timeoutSeconds and fix the load; if failing, fix the dependency.",
            "Keep liveness probes free of dependency checks so a dependency outage cannot "
            "restart every pod.",
        ),
        commands=(
            "kubectl -n {namespace} describe {kind} {name} | grep -i -A3 probe",
            "kubectl -n {namespace} exec {name} -- wget -qO- -T 2 http://127.0.0.1:8080/healthz",
        ),
    ),
}

# Upstream's and Kubernetes' other names for the faults a playbook covers.
ALIASES = {
    "CrashLoopBackOff": "CrashLoop",
    "BackOff": "CrashLoop",
    "Failed": "PodCrash",
    "Error": "PodCrash",
    "OOMKilling": "OOMKilled",
    "NodeNotReady": "NodeUnhealthy",
    "DiskPressure": "NodeUnhealthy",
    "MemoryPressure": "NodeUnhealthy",
    "EvictionThresholdMet": "NodeUnhealthy",
    "DeploymentRolloutStalled": "DeploymentFailure",
    "ProgressDeadlineExceeded": "DeploymentFailure",
    "StatefulSetUnavailable": "DeploymentFailure",
    "DaemonSetMisscheduled": "DeploymentFailure",
    "FailedDaemonPod": "DeploymentFailure",
    "FailedCreate": "DeploymentFailure",
    "JobFailed": "JobFailure",
    "BackoffLimitExceeded": "JobFailure",
    "DeadlineExceeded": "JobFailure",
    "ErrImagePull": "ImagePullBackOff",
    "InvalidImageName": "ImagePullBackOff",
    "PVCPending": "FailedScheduling",
    "Unschedulable": "FailedScheduling",
    "Unhealthy": "ProbeFailure",
}


def playbook_for(fault_type: str) -> tuple[str, Playbook]:
    """(the playbook's name, the playbook) for a fault type; GENERIC when none fits."""
    name = ALIASES.get(fault_type, fault_type)
    if name in PLAYBOOKS:
        return name, PLAYBOOKS[name]
    return "generic", GENERIC


GENERIC = Playbook(
    title="resource reported a fault",
    impact="Unknown until the fault type is recognised; treat by severity.",
    hypotheses=(
        Hypothesis(
            "A recent change to the resource or its dependencies",
            45,
            "faults started after a change",
            "the resource's change history",
            ("update", "changed", "rollout"),
        ),
        Hypothesis(
            "Resource exhaustion (CPU, memory, disk, quota)",
            35,
            "usage near limits at the time of the fault",
            "metrics for the resource and its node",
            ("memory", "cpu", "disk", "quota"),
        ),
        Hypothesis(
            "External dependency failure",
            20,
            "errors mention a remote endpoint",
            "the dependency's status",
            ("connection", "timeout", "unavailable"),
        ),
    ),
    remediation=(
        "Confirm the fault with `kubectl describe` and the resource's events.",
        "Route to the owning team with this report attached.",
    ),
    commands=("kubectl -n {namespace} describe {kind} {name}",),
)

# playbook name -> (when to escalate, the assumption that would hurt most if wrong).
RISKS: dict[str, tuple[str, str]] = {
    "CrashLoop": (
        "other pods of the same owner start crash-looping, or the rollback does not restore "
        "Ready within 5 minutes",
        "that the log sample is from the failing container instance, not a healthy restart",
    ),
    "PodCrash": (
        "the same container crashes on more than one node within 15 minutes",
        "that the crash is in the application, not in the node or the container runtime",
    ),
    "OOMKilled": (
        "the kill repeats after the limit is raised, or other pods on the node are OOM-killed",
        "that the container's own usage hit its limit, not node-level memory pressure",
    ),
    "NodeUnhealthy": (
        "a second node in the same pool or zone goes NotReady",
        "that the node, not the control plane or the network between them, is at fault",
    ),
    "DeploymentFailure": (
        "the old ReplicaSet loses pods too, or the rollout is undone and still stalls",
        "that the previous revision is still healthy enough to roll back to",
    ),
    "JobFailure": (
        "a downstream consumer reports missing data, or the next scheduled run fails too",
        "that a rerun is idempotent and will not duplicate the work already done",
    ),
    "ImagePullBackOff": (
        "pulls fail for other images from the same registry",
        "that the tag exists and only this pod cannot pull it",
    ),
    "FailedScheduling": (
        "pods of other workloads go Pending too, or the autoscaler is at its node limit",
        "that capacity, not a selector or taint change, keeps the pod off every node",
    ),
    "ProbeFailure": (
        "more than half of the Service's endpoints go NotReady",
        "that the probe measures the application and not one of its dependencies",
    ),
    "generic": (
        "the fault repeats or spreads to other resources in the namespace",
        "that the fault type describes the failure well enough to pick a playbook",
    ),
}
