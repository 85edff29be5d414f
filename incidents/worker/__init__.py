"""The triage worker behind `manage.py run_triage`: the design's integration points 2-5.

For each pending incident, oldest first, a worker

1. claims it (`DjangoStateStore.claim_next_incident`: SKIP LOCKED on PostgreSQL, then
   `update_incident_status(id, "investigating")`), so concurrent workers never share one;
2. makes `<workspace-root>/<incident_id>/` (see `incidents.worker.workspace`);
3. runs the agent command there (see `incidents.worker.agent`) and records the execution;
4. stores the report `output/investigation.md` with its sanitized HTML when it is valid;
5. completes the incident (see `incidents.worker.pipeline` for the verdict table).

The agent command is split like a shell would (`shlex`) and run without a shell, with the
workspace as its working directory; `{workspace}`, `{incident_id}`, `{execution_id}`,
`{timeout}` and `{prompt}` are filled in within their arguments (see `WorkerConfig.argv`), and
`stub` names the shipped demo agent. A root worker runs agents as `TRIAGE_AGENT_USER` (never
root); their environment is an allow-list (see `incidents.worker.agent`) plus:

    TRIAGE_INCIDENT_ID, INCIDENT_ID     the incident's UUID
    TRIAGE_EXECUTION_ID                 this run's AgentExecution UUID
    TRIAGE_WORKSPACE, HOME              the workspace folder (also the working directory)
    TRIAGE_INCIDENT_FILE                <workspace>/incident.json (nightcrier's fields and ours)
    TRIAGE_EVENT_FILE                   <workspace>/event.json (the record as upstream sent it)
    TRIAGE_PROMPT_FILE                  <workspace>/prompt-sent.md (TRIAGE_AGENT_PROMPT_FILE's text)
    TRIAGE_OUTPUT_DIR                   <workspace>/output (empty at start)
    TRIAGE_REPORT_FILE                  <workspace>/output/investigation.md, the file to write
    TRIAGE_TIMEOUT_SECONDS              the time the agent has before it is terminated
    CONTAINER_TIMEOUT                   a little less: for the agent's own `timeout` wrapper
    KUBECONFIG, KUBECONFIG_PATH         TRIAGE_KUBECONFIG_DIR/<cluster>, when that file exists
    PYTHONPATH                          the project directory first (for the stub agent)

Crash safety: a worker that dies leaves its incident investigating with an open execution. Any
worker finds incidents investigating for longer than timeout + 2 x kill grace (no run can take
that long), closes the execution as "worker lost" and requeues the incident; an incident lost a
second time ends agent_failed, "worker lost twice" (`DjangoStateStore.recover_lost_incidents`).
"""

from incidents.worker.config import WorkerConfig
from incidents.worker.loop import Mode, Summary, Worker
from incidents.worker.pipeline import Outcome, triage_incident

__all__ = ["Mode", "Outcome", "Summary", "Worker", "WorkerConfig", "triage_incident"]
