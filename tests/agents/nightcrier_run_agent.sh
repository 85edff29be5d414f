#!/usr/bin/env bash
# A stand-in for nightcrier's agent-container/run-agent.sh (randybias/nightcrier, HEAD 8e4d028),
# written for these tests: it keeps the script's contract with its caller and nothing else.
# The real script stays out of this repository. What is kept, and fails the same way:
#   - `set -euo pipefail`, and INCIDENT_ID read unguarded (unset: the script dies);
#   - options -w/--workspace, -m/--model, -t/--allowed-tools, --timeout, -a/--agent,
#     --kubeconfig, -i/--image; any other option is an error (exit 1); the rest is the prompt;
#   - the environment it reads: AGENT_CLI, AGENT_IMAGE, LLM_MODEL, AGENT_ALLOWED_TOOLS,
#     CONTAINER_TIMEOUT, ANTHROPIC_API_KEY (required for claude), KUBECONFIG_PATH;
#   - prompt and workspace required, the workspace must exist, prompt-sent.md must be in it
#     (the script appends its preloaded context to it; exit 1 when it is missing);
#   - `timeout "$CONTAINER_TIMEOUT" docker run ...` with incident.json mounted read-only, output/
#     mounted read-write, the kubeconfig mounted when it is a file, the container named after
#     the incident; its exit status is the script's (124 when `timeout` fires).
set -euo pipefail

AGENT_CLI="${AGENT_CLI:-}"
AGENT_IMAGE="${AGENT_IMAGE:-}"
LLM_MODEL="${LLM_MODEL:-}"
AGENT_ALLOWED_TOOLS="${AGENT_ALLOWED_TOOLS:-}"
CONTAINER_TIMEOUT="${CONTAINER_TIMEOUT:-}"
ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-}"
KUBECONFIG_PATH="${KUBECONFIG_PATH:-}"
WORKSPACE_DIR=""
PROMPT=""

while [[ $# -gt 0 ]]; do
    case $1 in
        -w|--workspace) WORKSPACE_DIR="$2"; shift 2 ;;
        -m|--model) LLM_MODEL="$2"; shift 2 ;;
        -t|--allowed-tools) AGENT_ALLOWED_TOOLS="$2"; shift 2 ;;
        --timeout) CONTAINER_TIMEOUT="$2"; shift 2 ;;
        -a|--agent) AGENT_CLI="$2"; shift 2 ;;
        --kubeconfig) KUBECONFIG_PATH="$2"; shift 2 ;;
        -i|--image) AGENT_IMAGE="$2"; shift 2 ;;
        -*) echo "Error: Unknown option: $1" >&2; exit 1 ;;
        *) PROMPT="$*"; break ;;
    esac
done

case "$AGENT_CLI" in
    claude|codex|goose|gemini) ;;
    *) echo "Error: Invalid agent '$AGENT_CLI'" >&2; exit 1 ;;
esac
if [[ "$AGENT_CLI" == claude && -z "$ANTHROPIC_API_KEY" ]]; then
    echo "Error: ANTHROPIC_API_KEY is required for Claude" >&2; exit 1
fi
[[ -n "$PROMPT" ]] || { echo "Error: Prompt is required" >&2; exit 1; }
[[ -n "$WORKSPACE_DIR" ]] || { echo "Error: Workspace directory is required" >&2; exit 1; }
[[ -d "$WORKSPACE_DIR" ]] || { echo "Error: Workspace directory does not exist" >&2; exit 1; }
WORKSPACE_DIR="$(cd "$WORKSPACE_DIR" && pwd)"

AUDIT="$WORKSPACE_DIR/prompt-sent.md"
[[ -f "$AUDIT" ]] || { echo "Error: $AUDIT not found (written by the caller)" >&2; exit 1; }
printf '\n## Preloaded context\n\n(cluster state gathered before the run)\n' >> "$AUDIT"

OUTPUT_DIR="$WORKSPACE_DIR/output"
mkdir -p "$OUTPUT_DIR"
AGENT_HOME=/home/agent
DOCKER_ARGS=(run --rm --stop-timeout "$CONTAINER_TIMEOUT")
DOCKER_ARGS+=(-e "ANTHROPIC_API_KEY=${ANTHROPIC_API_KEY}")
DOCKER_ARGS+=(-v "$WORKSPACE_DIR/incident.json:$AGENT_HOME/incident.json:ro")
DOCKER_ARGS+=(-v "$OUTPUT_DIR:$AGENT_HOME/output")
if [[ -f "$KUBECONFIG_PATH" ]]; then
    DOCKER_ARGS+=(-v "$KUBECONFIG_PATH:$AGENT_HOME/.kube/config:ro")
fi
DOCKER_ARGS+=(-w "$AGENT_HOME")
if [[ -n "$INCIDENT_ID" ]]; then
    DOCKER_ARGS+=(--name "nightcrier-agent-${INCIDENT_ID}")
fi
DOCKER_ARGS+=("$AGENT_IMAGE")
printf -v QUOTED_PROMPT '%q' "$PROMPT"
AGENT_CMD="claude -p $QUOTED_PROMPT --model $LLM_MODEL --allowedTools $AGENT_ALLOWED_TOOLS"

timeout "$CONTAINER_TIMEOUT" docker "${DOCKER_ARGS[@]}" "$AGENT_CMD"
EXIT_CODE=$?
echo "Agent completed with exit code: $EXIT_CODE" >&2
exit $EXIT_CODE
