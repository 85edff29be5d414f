"""A test agent whose behaviour is chosen by its arguments (standard library only).

Run by the worker as `python tests/agents/scripted_agent.py [options]`; every option is one
behaviour the tests need: the report it writes, its exit code, sleeping past a timeout, ignoring
SIGTERM, flooding stdout, leaving a child behind, and recording what it saw.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FULL_REPORT = """# Investigation of {incident_id}

## Executive triage card

| field | value |
|---|---|
| verdict | scripted agent ran |

```text
all good
```
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--report", choices=["full", "small", "none", "symlink"], default="full")
    parser.add_argument("--report-text", help="exact report content (overrides --report full)")
    parser.add_argument("--report-bytes", type=int, help="write a report of this many bytes")
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--kill-self", help="end by this signal (e.g. SIGSEGV) instead")
    parser.add_argument("--stderr", default="")
    parser.add_argument("--nul", action="store_true", help="end stderr and report with NUL")
    parser.add_argument("--stdout-bytes", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--spawn-sleeper", action="store_true")
    parser.add_argument("--record", help="append this incident's id to FILE (order of runs)")
    parser.add_argument("--dump-env", action="store_true", help="write seen.json in the cwd")
    parser.add_argument("--result", help="write this text as output/result.json")
    parser.add_argument("--result-bytes", type=int, help="write a result.json of this many bytes")
    parser.add_argument("--result-symlink", action="store_true", help="result.json -> incident")
    parser.add_argument("--result-hardlink", action="store_true", help="a hard link to incident")
    parser.add_argument("extra", nargs="*", help="ignored (placeholders under test)")
    options = parser.parse_args()

    incident = json.loads(Path(os.environ["TRIAGE_INCIDENT_FILE"]).read_text())
    if options.record:
        with open(options.record, "a") as handle:
            handle.write(incident["incidentId"] + "\n")
    if options.dump_env:
        seen = {
            "argv": sys.argv[1:],
            "uid": os.getuid(),
            "incident": incident,
            "prompt_sent": Path("prompt-sent.md").read_text(),
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "own_session": os.getsid(0) == os.getpid(),
            "output_listing": sorted(os.listdir(os.environ["TRIAGE_OUTPUT_DIR"])),
        }
        Path("seen.json").write_text(json.dumps(seen))
    if options.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if options.spawn_sleeper:
        child = subprocess.Popen(["sleep", "600"])  # inherits stdout/stderr and the group
        Path("child.pid").write_text(str(child.pid))
    Path("agent.pid").write_text(str(os.getpid()))
    if options.stdout_bytes:
        line = b"x" * 1023 + b"\n"
        for _ in range(options.stdout_bytes // len(line)):
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
    nul = "\x00" if options.nul else ""
    if options.stderr:
        print(options.stderr + nul, file=sys.stderr, flush=True)
    time.sleep(options.sleep)

    report = Path(os.environ["TRIAGE_REPORT_FILE"])
    if options.report_bytes is not None:
        report.write_bytes(b"# big\n" + b"x" * (options.report_bytes - 6))
    elif options.report_text is not None:
        report.write_text(options.report_text + nul)
    elif options.report == "full":
        report.write_text(FULL_REPORT.format(incident_id=incident["incidentId"]))
    elif options.report == "small":
        report.write_text("# tiny\n")
    elif options.report == "symlink":
        report.symlink_to(Path(os.environ["TRIAGE_INCIDENT_FILE"]))
    result = report.parent / "result.json"
    if options.result is not None:
        result.write_text(options.result)
    elif options.result_bytes is not None:
        result.write_bytes(b'{"agent": "' + b"x" * (options.result_bytes - 13) + b'"}')
    elif options.result_symlink:
        result.symlink_to(Path(os.environ["TRIAGE_INCIDENT_FILE"]))
    elif options.result_hardlink:
        os.link(os.environ["TRIAGE_INCIDENT_FILE"], result)
    if options.kill_self:
        os.kill(os.getpid(), getattr(signal, options.kill_self))
    return options.exit


if __name__ == "__main__":
    sys.exit(main())
