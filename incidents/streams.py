"""Byte streams -> records, without loading a stream whole.

`iter_records` splits JSON Lines, a JSON array, or concatenated JSON values (a pretty-printed
object) into `RawRecord`s, each with the line it starts on, so rejections can name it. Memory is
one record (and a 1 MiB read buffer), whatever the stream's size.
"""

from __future__ import annotations

import codecs
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record's text as read (`raw`), the line it starts on, and, when the stream itself
    could not be read as records, why (`error`): such a record is rejected as it is."""

    line: int
    raw: bytes
    error: str | None = None


_CHUNK = 1 << 20


def iter_records(stream: IO[bytes]) -> Iterator[RawRecord]:
    """The records of a byte stream: JSON Lines, a JSON array, or JSON values one after another
    (one pretty-printed object, say), told apart by the first two non-blank lines. Reads as it
    goes: memory holds one line (JSON Lines) or about a megabyte plus one record (the others).

    JSON Lines: each non-blank line is a record, valid or not; a broken first line is one of
    them when the second line is a whole record. A JSON array or a stream of values: a syntax
    error ends the stream, reported as one record whose error says where.
    """
    line_no = 0
    first = b""
    for chunk in iter(stream.readline, b""):
        line_no += 1
        if line_no == 1 and chunk.startswith(codecs.BOM_UTF8):
            chunk = chunk[len(codecs.BOM_UTF8) :]
        if chunk.strip():
            first = chunk
            break
    if not first:
        return
    # The lines up to the second non-blank one: it settles what a broken first line means.
    ahead: list[bytes] = []
    for chunk in iter(lambda: stream.readline(_max_scan()), b""):  # bounded: a peek
        ahead.append(chunk)
        if chunk.strip():
            break
    second = ahead[-1] if ahead and ahead[-1].strip() else b""
    head = first.lstrip()
    if head.startswith(b"["):
        lines = _is_whole_record(first, any_value=True) and _is_whole_record(second)
    else:
        lines = _looks_like_a_line_record(first) or _is_whole_record(second)
    if not lines:
        yield from _iter_values(
            first + b"".join(ahead), stream, line_no, array=head.startswith(b"[")
        )
        return
    if ahead and not ahead[-1].endswith(b"\n"):
        ahead[-1] += stream.readline()  # the peek stopped mid-line: a line is one record
    yield RawRecord(line_no, first.rstrip(b"\r\n"))
    for chunk in itertools.chain(ahead, stream):
        line_no += 1
        if chunk.strip():
            yield RawRecord(line_no, chunk.rstrip(b"\r\n"))


def _is_whole_record(line: bytes, *, any_value: bool = False) -> bool:
    """Whether `line` is a complete JSON object (or, with any_value, any JSON value) by itself."""
    try:
        value = json.loads(line.strip() or b"x")
    except (ValueError, RecursionError):
        return False
    return any_value or isinstance(value, dict)


def _looks_like_a_line_record(line: bytes) -> bool:
    """Whether the first line is a record on its own (JSON Lines), broken or not."""
    stripped = line.strip()
    if stripped.startswith(b"{") and stripped.endswith(b"}"):
        return True
    try:
        json.loads(stripped)
    except ValueError:
        return False
    except RecursionError:
        return True  # one deeply nested line: a record of its own, rejected as such
    return True


def _max_scan() -> int:
    # How far to read looking for the end of one record before giving up on the stream.
    return max(settings.TRIAGE_MAX_RECORD_BYTES * 8, 64 * 1024 * 1024)


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
                    yield fail(f"record is over {_max_scan()} bytes; the rest is not read")
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
