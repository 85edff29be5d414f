"""`output/result.json`: what an agent says of its own run (agent, model, tokens, cost, tools).

The file is optional and every field in it is optional:

    {"agent": "claude-code", "model": "claude-sonnet-4-5",
     "usage": {"input_tokens": 1200, "output_tokens": 800, "cache_read_tokens": 0},
     "cost_usd": 0.0156, "tool_calls": 7}

Unknown fields are kept (the raw text is stored with the execution). It is read like the
report (the agent owned the folder): no symlink followed, a regular file with one link, at most
MAX_RESULT_BYTES. A file that breaks any rule is not used at all and the reason is recorded on
the execution (`result_error`); it never changes the run's outcome: the report decides that.
"""

from __future__ import annotations

import errno
import json
import math
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from incidents.worker.isolation import is_private_file
from incidents.worker.workspace import Workspace, open_folder

RESULT_NAME = "result.json"
MAX_RESULT_BYTES = 64 * 1024
MAX_TEXT_CHARS = 255  # the agent and model columns
# A cost above this is a unit mistake (cents, micro-dollars), not a run: refused, not stored.
MAX_COST_USD = Decimal("100000")
MAX_COUNT = 2**62  # fits a BIGINT with room to sum
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens")


@dataclass(frozen=True)
class RunResult:
    """The fields of a valid result.json (None or "" where it said nothing), or why none."""

    agent: str = ""
    model: str = ""
    usage: dict[str, int | None] = field(default_factory=dict)
    cost_usd: Decimal | None = None
    tool_calls: int | None = None
    raw: str = ""
    error: str = ""

    def apply(self, execution: Any) -> None:
        """Copy onto an AgentExecution (its result columns)."""
        execution.agent = self.agent
        execution.model = self.model
        for key in USAGE_KEYS:
            setattr(execution, key, self.usage.get(key))
        execution.cost_usd = self.cost_usd
        execution.tool_calls = self.tool_calls
        execution.result_json = self.raw
        execution.result_error = self.error


class ResultInvalid(ValueError):
    """The file is not an acceptable result.json; the message says which field and why."""


def _open_result(workspace: Workspace) -> int:
    folder = open_folder(workspace.path)
    try:
        output = open_folder(Path(workspace.output_dir.name), parent_fd=folder)
    finally:
        os.close(folder)
    try:
        return os.open(RESULT_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=output)
    finally:
        os.close(output)


def _read_bytes(workspace: Workspace) -> bytes | None:
    """The file's bytes; None when there is none. Raises ResultInvalid for an unsafe file."""
    try:
        fd = _open_result(workspace)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW met a symlink
            raise ResultInvalid("result.json is not a regular file") from None
        raise ResultInvalid(f"result.json unreadable: {error.strerror or error}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not is_private_file(info):
            raise ResultInvalid("result.json is not a regular file")
        if info.st_size > MAX_RESULT_BYTES:
            raise ResultInvalid(
                f"result.json too large: {info.st_size} bytes (at most {MAX_RESULT_BYTES})"
            )
        data = handle.read(MAX_RESULT_BYTES + 1)
    if len(data) > MAX_RESULT_BYTES:  # grew while read
        raise ResultInvalid(f"result.json too large: over {MAX_RESULT_BYTES} bytes")
    return data


def _text(document: dict, key: str) -> str:
    value = document.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ResultInvalid(f"result.json {key}: a string expected, not {type(value).__name__}")
    value = value.strip().replace("\x00", "")
    if len(value) > MAX_TEXT_CHARS:
        raise ResultInvalid(f"result.json {key}: longer than {MAX_TEXT_CHARS} characters")
    return value


def _count(value: object, where: str) -> int | None:
    """A whole, non-negative number (JSON 12 or 12.0); None for null or absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultInvalid(f"result.json {where}: a number expected, not {type(value).__name__}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ResultInvalid(f"result.json {where}: a whole number expected, not {value!r}")
    if not 0 <= value <= MAX_COUNT:
        raise ResultInvalid(f"result.json {where}: must be between 0 and {MAX_COUNT}, not {value}")
    return int(value)


def _cost(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ResultInvalid(f"result.json cost_usd: a number expected, not {type(value).__name__}")
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        raise ResultInvalid(f"result.json cost_usd: not a number: {value!r}") from None
    if not cost.is_finite() or cost < 0 or cost > MAX_COST_USD:
        raise ResultInvalid(f"result.json cost_usd: must be between 0 and {MAX_COST_USD}")
    return cost.quantize(Decimal("0.000001"))


def parse_result(data: bytes) -> RunResult:
    """A RunResult from the file's bytes. Raises ResultInvalid naming the field."""
    try:
        # Decimal keeps the cost exactly as written (0.1 stays 0.1, not 0.1000000000000000055).
        document = json.loads(data.decode("utf-8"), parse_float=Decimal)
    except UnicodeDecodeError:
        raise ResultInvalid("result.json is not UTF-8") from None
    except (ValueError, RecursionError) as error:
        raise ResultInvalid(f"result.json is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ResultInvalid(f"result.json: an object expected, not {type(document).__name__}")
    usage = document.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise ResultInvalid(f"result.json usage: an object expected, not {type(usage).__name__}")
    counts = {}
    for key in USAGE_KEYS:
        value = usage.get(key)
        counts[key] = _count(float(value) if isinstance(value, Decimal) else value, f"usage.{key}")
    tool_calls = document.get("tool_calls")
    return RunResult(
        agent=_text(document, "agent"),
        model=_text(document, "model"),
        usage=counts,
        cost_usd=_cost(document.get("cost_usd")),
        tool_calls=_count(
            float(tool_calls) if isinstance(tool_calls, Decimal) else tool_calls, "tool_calls"
        ),
        raw=data.decode("utf-8").replace("\x00", "\ufffd"),
    )


def read_result(workspace: Workspace) -> RunResult:
    """The run's result.json; an empty RunResult when the agent wrote none, and one with only
    `error` set when the file is unacceptable (see the module docstring). Never raises."""
    try:
        data = _read_bytes(workspace)
        if data is None:
            return RunResult()
        return parse_result(data)
    except ResultInvalid as error:
        return RunResult(error=str(error))
    except OSError as error:  # the folder itself went away or was replaced
        return RunResult(error=f"result.json unreadable: {error.strerror or error}")
