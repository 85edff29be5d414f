"""Issue 20 F16: upstream text in a log record cannot forge log lines or send terminal escapes,
in either log format (plain for DEBUG, JSON otherwise)."""

import io
import json
import logging
import re
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils.module_loading import import_string

FORGED = "kubernetes/x\n2026-11-29 22:00:00,000 ERROR incidents.worker forged\x1b[2J\x1b]0;pwn\x07"
HOSTILE = {
    "jsonrpc": "2.0",
    "method": "notifications/message",
    "params": {"level": "info", "logger": FORGED, "data": {"note": "\r\x9b31m\u2028x"}},
}
TIMESTAMPED = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ")


def formatter(name: str) -> logging.Formatter:
    """The formatter settings.LOGGING configures under `name`, built as dictConfig builds it."""
    conf = dict(settings.LOGGING["formatters"][name])
    factory = import_string(conf.pop("()")) if "()" in conf else logging.Formatter
    if "format" in conf:
        conf["fmt"] = conf.pop("format")
    return factory(**conf)


@pytest.fixture
def ingest_log():
    """What the incidents.ingest logger writes through a handler with the given format."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("incidents.ingest")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)

    def use(name: str) -> io.StringIO:
        handler.setFormatter(formatter(name))
        return out

    yield use
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.mark.django_db
def test_a_hostile_logger_name_cannot_forge_a_plain_log_line(tmp_path, ingest_log):
    out = ingest_log("plain")
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps(HOSTILE) + "\n")
    call_command("ingest_events", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    text = out.getvalue()
    lines = text.splitlines()
    assert len(lines) == 1, text  # the "ignored a notification" line, and nothing forged
    assert TIMESTAMPED.match(lines[0])
    assert "\\n2026-11-29 22:00:00,000 ERROR incidents.worker forged\\x1b[2J" in lines[0]
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", text)


@pytest.mark.django_db
def test_a_hostile_logger_name_stays_inside_one_json_log_record(tmp_path, ingest_log):
    out = ingest_log("json")
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps(HOSTILE) + "\n")
    call_command("ingest_events", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    (line,) = out.getvalue().splitlines()
    assert FORGED in json.loads(line)["message"]  # kept, as escapes
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", line)


def test_a_traceback_keeps_its_lines_but_none_starts_like_a_record():
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed: %s", ("a\x1bb",), None)
    try:
        raise ValueError("boom\n2026-11-29 22:00:00,000 ERROR forged")
    except ValueError:
        record.exc_info = sys.exc_info()
    text = formatter("plain").format(record)
    first, *rest = text.split("\n")
    assert first.endswith("failed: a\\x1bb")
    assert rest and all(line.startswith(" ") for line in rest)
    assert "  2026-11-29 22:00:00,000 ERROR forged" in rest
