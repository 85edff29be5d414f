"""Every wire record in ../shared/upstream/fixtures/ through `manage.py ingest_events`.

The fixtures are rebuilt from the fork's code and tests and nightcrier's captures (their
SOURCES.md names each one's origin); ../shared/UPSTREAM.md says what each shape means. The
expected outcome of each is written next to it below, with the reason. CI has shared/ beside
the checkout, so the folder is read relative to the repository, never skipped.
"""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from incidents.context import upstream_view
from incidents.events import CLUSTER_HINT, derive_fault_id
from incidents.models import FaultEvent, Incident

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "upstream" / "fixtures"

# file -> (outcome, why)
EXPECTED = {
    "N04-nc-adopt-faultid-after.json": ("created", "nightcrier's HEAD fault as a bare payload"),
    "N05-nc-postgres-test-fault.json": (
        "created", "severity `high` is one of ours; a UUID fault id is text like any other"),
    "N06-nc-sqlite-test-fault.json": ("created", "a short fault id is accepted as sent"),
    "U01-notiftest-faultid-envelope.json": (
        "created", "the HEAD envelope; upstream's test id is not hex, kept as sent"),
    "U02-notiftest-no-apiversion-no-ns.json": ("created", "no apiVersion, no namespace: empty"),
    "U03-notiftest-podcrash.json": ("created", "PodCrash"),
    "U04-crashloop-detector.json": ("created", "the CrashLoop detector's fault"),
    "U05-podcrash-oomkilled.json": ("created", "severity `warning`, stored as medium"),
    "U06-node-unhealthy-cluster-scoped.json": ("created", "a Node: no namespace"),
    "U07-node-unknown-warning.json": ("created", "a Node at warning"),
    "U08-deployment-failure.json": ("created", "apps/v1 Deployment"),
    "U09-job-failure.json": ("created", "batch/v1 Job"),
    "U10-crashloop-enriched-logs-json-string.json": (
        "created", "context is a JSON-array string, kept exactly"),
    "U11-in-cluster-empty-cluster.json": (
        "rejected", "cluster \"\" (in-cluster) without --cluster; stored with --cluster"),
    "U12-bare-params-object.json": ("created", "the bare params object an SDK callback gives"),
    "U13-subscription-error-test.json": ("ignored", "kubernetes/subscription_error is no fault"),
    "U14-subscription-error-manager.json": ("ignored", "kubernetes/subscription_error"),
    "U15-events-mode-notification.json": ("ignored", "kubernetes/events: a plain event"),
    "U16-nil-data.json": ("ignored", "kubernetes/events with null data"),
    "U17-resource-faults-pre-faultid.json": (
        "created", "no faultId (2025-12-20): derived as upstream does, marked derived"),
    "U18-old-event-faults-mode.json": (
        "created", "the 2025-12-19 event+logs shape under kubernetes/faults"),
}  # fmt: skip
OUTCOMES = ("created", "duplicate", "coalesced", "silenced", "rejected", "ignored")


def ingest(*paths: Path, cluster: str | None = None) -> tuple[dict[str, int], str]:
    """The command's summary counts and its stderr."""
    out, err = io.StringIO(), io.StringIO()
    args = [str(path) for path in paths] + (["--cluster", cluster] if cluster else [])
    try:
        call_command("ingest_events", *args, stdout=out, stderr=err)
    except SystemExit:
        pass  # exit 1: something was rejected; the summary says what
    words = out.getvalue().splitlines()[-1].replace(":", ",").split(", ")
    counts = {word.split()[0]: int(word.split()[1]) for word in words}
    return counts, err.getvalue()


def payload_of(path: Path) -> dict:
    record = json.loads(path.read_text())
    params = record.get("params", record)
    return params.get("data", record) if "logger" in params else record


def test_every_fixture_has_an_expected_outcome():
    assert FIXTURES.is_dir(), f"{FIXTURES} is missing: CI checks shared/ out beside the repo"
    assert {path.name for path in FIXTURES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_ends_as_upstream_md_implies(name):
    outcome, _why = EXPECTED[name]
    path = FIXTURES / name
    counts, stderr = ingest(path)
    assert counts == {"received": 1, **{o: int(o == outcome) for o in OUTCOMES}}, stderr
    if outcome != "created":
        assert not FaultEvent.objects.exists()
        return
    event = FaultEvent.objects.get()
    assert Incident.objects.get().fault_id == event.fault_id
    sent = payload_of(path)
    view = upstream_view(event)
    assert view["raw"] == path.read_text().rstrip("\n")  # the record as sent, byte for byte
    assert view["cluster"] == event.cluster == sent["cluster"]
    if "event" in sent:  # the old shape has neither severity nor context of its own
        assert view["severity"] == "warning"  # the notification's level
        assert view["timestamp"] == sent["event"]["timestamp"]
        return
    assert view["severity"] == sent["severity"]  # upstream's word, not our column's
    assert view["context"] == sent.get("context", "")
    assert view["timestamp"] == sent["timestamp"]
    assert event.fault_id == sent.get("faultId", event.fault_id)


def test_the_in_cluster_fault_is_rejected_saying_to_pass_cluster_and_stored_with_it():
    path = FIXTURES / "U11-in-cluster-empty-cluster.json"
    counts, stderr = ingest(path)
    assert counts["rejected"] == 1
    assert stderr.strip() == f"{path}:1: cluster is empty ({CLUSTER_HINT})"
    counts, stderr = ingest(path, cluster="prod-eu-1")
    assert (counts["created"], stderr) == (1, "")
    event = FaultEvent.objects.get()
    assert event.cluster == "prod-eu-1"
    assert event.fault_id == "559882bdadbbf3c8"  # upstream's id, as sent
    assert upstream_view(event)["server_cluster"] == ""


def test_a_fault_without_fault_id_gets_upstreams_id_and_a_replay_stays_duplicate():
    path = FIXTURES / "U17-resource-faults-pre-faultid.json"
    assert ingest(path)[0]["created"] == 1
    assert ingest(path)[0]["duplicate"] == 1
    event = FaultEvent.objects.get()
    # sha256("kind-events-test:CrashLoop:u-1:"), first 8 bytes: upstream's fault_id.go.
    assert event.fault_id == derive_fault_id("kind-events-test", "CrashLoop", "u-1")
    assert event.fault_id == "3700e653be66a972"
    assert upstream_view(event)["fault_id_derived"] is True


def test_a_derived_fault_id_uses_the_cluster_as_stored():
    path = FIXTURES / "U17-resource-faults-pre-faultid.json"
    ingest(path, cluster="prod-eu-1")
    assert FaultEvent.objects.get().fault_id == derive_fault_id("prod-eu-1", "CrashLoop", "u-1")


def test_upstreams_own_fault_ids_follow_its_formula():
    # The formula checked against fixtures rebuilt from the fork's detectors (container "").
    for name in ("U06-node-unhealthy-cluster-scoped.json", "U08-deployment-failure.json"):
        data = payload_of(FIXTURES / name)
        expected = derive_fault_id(data["cluster"], data["faultType"], data["resource"]["uid"])
        assert expected == data["faultId"]


def test_all_fixtures_together():
    counts, _stderr = ingest(*sorted(FIXTURES.glob("*.json")))
    # U12 repeats U04's fault (same faultId, later timestamp) while U04's incident is open.
    assert counts == {"received": 21, "created": 15, "duplicate": 0, "coalesced": 1,
                      "silenced": 0, "rejected": 1, "ignored": 4}  # fmt: skip
