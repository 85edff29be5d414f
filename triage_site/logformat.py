"""The plain (DEBUG) log format, safe from the text it logs.

Log messages carry upstream text (logger names, fault fields, server error messages). Printed
as it is, a newline in it forges a log line of its own and an escape sequence drives the
terminal (colours, titles, cleared screens). `EscapingFormatter` writes every control character
(C0 but for the newline of a traceback, DEL, C1, U+2028/U+2029) as a visible escape (`\\n`,
`\\x1b`, `\\u2028`). The JSON format needs no help: python-json-logger escapes them (ensure_ascii).
"""

import logging
import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` on one line, every control character written as an escape."""
    return _CONTROL.sub(_escape_char, text)


class EscapingFormatter(logging.Formatter):
    """logging.Formatter whose output holds no control character but the newlines between the
    lines of a traceback or stack, and those continuation lines are indented, so no text logged
    can start a line that looks like a record of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei) -> str:  # noqa: N802
        return self._block(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return self._block(super().formatStack(stack_info))

    @staticmethod
    def _block(text: str) -> str:
        lines = _CONTROL_BUT_NEWLINE.sub(_escape_char, text).split("\n")
        return "\n".join(line if line.startswith(" ") else f"  {line}" for line in lines)
