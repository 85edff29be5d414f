"""Byte streams -> records, without loading a stream whole.

`iter_records` splits JSON Lines, a JSON array, or concatenated JSON values (a pretty-printed
object) into `RawRecord`s, each with the line it starts on, so rejections can name it. Memory is
bounded by TRIAGE_MAX_RECORD_BYTES (plus a 1 MiB read buffer), whatever the stream's size and
whatever the length of its lines: a line over the limit is read on in chunks, counted, and
copied (when asked) to a sink without ever being held whole.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

from django.conf import settings


class BytesSink(Protocol):
    """Where oversized records are copied: only written to (a binary file, or a text file's
    buffer behind its text layer)."""

    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record's text as read (`raw`), the line it starts on, and, when the stream itself
    could not be read as records, why (`error`): such a record is rejected as it is.

    `copied`: the record was too large to hold; `raw` is empty and the line was copied whole to
    the `oversized_sink` given to `iter_records` while it was read."""

    line: int
    raw: bytes
    error: str | None = None
    copied: bool = False


_CHUNK = 1 << 20


@dataclass(slots=True)
class _Line:
    number: int
    data: bytes  # the whole line with its ending, or only its first bytes when not `complete`
    complete: bool


class _LineReader:
    """Lines of at most `limit` bytes read whole; a longer one only as far as `limit` + 2 until
    `finish` streams the rest."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.number = 0

    def read(self) -> _Line | None:
        # limit + 2: a record of exactly `limit` bytes still fits with its "\r\n".
        data = self.stream.readline(self.limit + 2)
        if not data:
            return None
        self.number += 1
        if self.number == 1 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        complete = data.endswith(b"\n") or len(data) < self.limit + 2
        return _Line(self.number, data, complete)

    def finish(self, line: _Line, sink: BytesSink | None) -> int:
        """Read an incomplete line to its end in chunks, copying it (and a newline) to `sink`;
        its size in bytes without the line ending."""
        size, tail = len(line.data), line.data[-2:]
        if sink is not None:
            sink.write(line.data)
        while not tail.endswith(b"\n"):
            chunk = self.stream.readline(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            tail = (tail + chunk)[-2:]
            if sink is not None:
                sink.write(chunk)
        if tail.endswith(b"\n"):
            size -= 2 if tail == b"\r\n" else 1
        elif sink is not None:
            sink.write(b"\n")
        return size


def iter_records(
    stream: IO[bytes], *, oversized_sink: BytesSink | None = None
) -> Iterator[RawRecord]:
    """The records of a byte stream: JSON Lines, a JSON array, or JSON values one after another
    (one pretty-printed object, say). Reads as it goes.

    Which one, from the first two non-blank lines (README, "Input formats"):

    - a first line that starts with `[`: a JSON array, unless it is a whole JSON value by itself
      and the next line a whole object (JSON Lines whose first record is an array);
    - a first line that starts with `{`: JSON Lines when it is a record by itself (whole, or at
      least ending with `}`) or the next non-blank line starts with `{`; else JSON values one
      after another (a pretty-printed object);
    - any other first line (garbage, a number, a line over the limit): JSON Lines.

    JSON Lines are judged line by line: each non-blank line is a record, valid or not. A line
    over TRIAGE_MAX_RECORD_BYTES is one rejected record (`error` gives its size); it is streamed
    to `oversized_sink` when one is given (`copied`). A JSON array or a stream of values: a
    syntax error, or a value over the limit, ends the stream, reported as one record whose error
    says where.
    """
    limit = settings.TRIAGE_MAX_RECORD_BYTES
    reader = _LineReader(stream, limit)
    first = _next_non_blank(reader)
    if first is None:
        return
    if not first.complete:
        yield _oversized(reader, first, oversized_sink)
        yield from _iter_lines(reader, oversized_sink)
        return
    # The lines up to the second non-blank one: it settles what a broken first line means.
    ahead: list[_Line] = []
    while (line := reader.read()) is not None:
        ahead.append(line)
        if not line.complete or line.data.strip():
            break
    second = ahead[-1] if ahead and (ahead[-1].data.strip() or not ahead[-1].complete) else None
    if not _is_json_lines(first.data, second):
        # An incomplete peeked line goes on where the stream stands: nothing is lost.
        data = first.data + b"".join(line.data for line in ahead)
        yield from _iter_values(data, stream, first.number, array=first.data.lstrip()[:1] == b"[")
        return
    for line in (first, *ahead):
        if not line.complete:
            yield _oversized(reader, line, oversized_sink)
        elif line.data.strip():
            yield RawRecord(line.number, line.data.rstrip(b"\r\n"))
    yield from _iter_lines(reader, oversized_sink)


def _next_non_blank(reader: _LineReader) -> _Line | None:
    while (line := reader.read()) is not None:
        if not line.complete or line.data.strip():
            return line
    return None


def _iter_lines(reader: _LineReader, sink: BytesSink | None) -> Iterator[RawRecord]:
    while (line := reader.read()) is not None:
        if not line.complete:
            yield _oversized(reader, line, sink)
        elif line.data.strip():
            yield RawRecord(line.number, line.data.rstrip(b"\r\n"))


def _oversized(reader: _LineReader, line: _Line, sink: BytesSink | None) -> RawRecord:
    size = reader.finish(line, sink)
    reason = f"record is {size} bytes, over the limit of {reader.limit} bytes"
    return RawRecord(line.number, b"", reason, copied=sink is not None)


def _is_json_lines(first: bytes, second: _Line | None) -> bool:
    head = first.strip()
    if head.startswith(b"["):
        return (
            _is_whole_record(first, any_value=True)
            and second is not None
            and (second.complete and _is_whole_record(second.data))
        )
    if not head.startswith(b"{"):
        return True
    if head.endswith(b"}") or _is_whole_record(first):
        return True
    # A pretty-printer (json.dumps, jq) never starts an object's second line with "{": a key
    # comes first. So a second line starting with "{" is the next record of JSON Lines.
    return second is not None and second.data.lstrip().startswith(b"{")


def _is_whole_record(line: bytes, *, any_value: bool = False) -> bool:
    """Whether `line` is a complete JSON object (or, with any_value, any JSON value) by itself."""
    try:
        value = json.loads(line.strip() or b"x")
    except (ValueError, RecursionError):
        return False
    return any_value or isinstance(value, dict)


def _max_scan() -> int:
    # How far to read looking for the end of one record before giving up on the stream: a
    # record longer than the limit would be rejected anyway, so memory stays near the limit.
    return settings.TRIAGE_MAX_RECORD_BYTES + _CHUNK


def _iter_values(first: bytes, stream: IO[bytes], line_no: int, *, array: bool):
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    json_decoder = json.JSONDecoder()
    state: dict[str, Any] = {"buf": decoder.decode(first), "eof": False}
    pos = 0
    line = line_no

    def more() -> bool:
        nonlocal pos
        if state["eof"]:
            return False
        data = stream.read(_CHUNK)
        text = decoder.decode(data, final=not data)
        state["buf"] = state["buf"][pos:] + text
        pos = 0
        if not data:
            state["eof"] = True
        return True

    def skip_ws() -> bool:
        """Advance past whitespace; False at the end of the stream."""
        nonlocal pos, line
        while True:
            buf = state["buf"]
            end = len(buf)
            while pos < end and buf[pos] in " \t\r\n":
                if buf[pos] == "\n":
                    line += 1
                pos += 1
            if pos < end:
                return True
            if not more():
                return False

    def fail(reason: str) -> RawRecord:
        buf = state["buf"]
        newline = buf.find("\n", pos)
        fragment = buf[pos : newline if newline >= 0 else len(buf)]
        return RawRecord(line, fragment.encode("utf-8", "surrogateescape"), reason)

    if array:
        skip_ws()
        pos += 1  # the "["
        expect_value = True
        first_item = True
    while True:
        if not skip_ws():
            if array:
                yield fail("the JSON array is not closed with ']'")
            return
        buf = state["buf"]
        if array:
            char = buf[pos]
            if char == "]" and (first_item or not expect_value):
                pos += 1
                if skip_ws():
                    yield fail("unexpected text after the JSON array")
                return
            if not expect_value:
                if char != ",":
                    yield fail(f"expected ',' or ']' between array items, found {char!r}")
                    return
                pos += 1
                expect_value = True
                continue
        start_line = line
        while True:
            try:
                _value, end = json_decoder.raw_decode(state["buf"], pos)
            except RecursionError:
                # Where such a value ends is unknown without parsing it: stop, as for bad JSON.
                yield fail("record is nested too deeply to parse; the rest is not read")
                return
            except json.JSONDecodeError as error:
                if len(state["buf"]) - pos > _max_scan():
                    limit = settings.TRIAGE_MAX_RECORD_BYTES
                    yield fail(f"record is over the limit of {limit} bytes; the rest is not read")
                    return
                if more():
                    continue
                where = line + state["buf"].count("\n", pos, error.pos)
                yield fail(
                    f"not valid JSON: {error.msg} at line {where}; "
                    "the rest of the input is not read"
                )
                return
            except ValueError:  # an integer of thousands of digits (sys.get_int_max_str_digits)
                yield fail("record holds a number too long to read; the rest is not read")
                return
            break
        buf = state["buf"]
        text = buf[pos:end]
        yield RawRecord(start_line, text.encode("utf-8", "surrogateescape"))
        line += text.count("\n")
        pos = end
        if array:
            expect_value = False
            first_item = False
