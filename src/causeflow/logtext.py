"""Client text on its way into a log line: escaped, bounded, credentials redacted.

Whatever a client controls (a path segment, a query string, a header value, an exception
message quoting one) goes into a log line through `clean`: control and line-breaking characters
become visible escapes, so a `%0A` in a tenant id cannot start a forged line, and the text is cut
to a bounded length. Query strings go through `redact_query` first, which hides the value of
every parameter whose decoded name is a credential's, however its name is spelled on the wire.

`LogFormatter` (the service's log handler, `cli.configure_logging`) adds the same guarantee for
whole records: a record is one line, and the lines of a traceback are indented under it, so no
text inside one can pass for a record of its own.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from urllib.parse import unquote_plus

import orjson

DEFAULT_LIMIT = 200

# Names of query parameters that carry credentials, compared after percent-decoding and lower
# casing: `apiKey` (inbound alerts), `token` (stream tickets), and their usual spellings.
SECRET_QUERY_NAMES = frozenset(
    {
        "apikey",
        "api_key",
        "api-key",
        "key",
        "token",
        "access_token",
        "ticket",
        "secret",
        "password",
        "signature",
        "sig",
    }
)
REDACTED = "***"

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and C1 controls, DEL, Unicode line and paragraph separators, and the bidirectional
# overrides that can make a line read differently from what it holds.
_CONTROL_POINTS = [
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_CONTROLS: dict[int, str] = {
    c: _NAMED.get(chr(c), f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROL_POINTS
}
# For values: the backslash is escaped too, so an escape in the output always means one.
_VALUE_ESCAPES: dict[int, str] = {**_CONTROLS, ord("\\"): "\\\\"}
_SEPARATORS = re.compile(r"([&;])")


def clean(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """`value` as text fit for a log line: escaped and cut to `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    suffix = ""
    if len(text) > limit:
        suffix = f"...(+{len(text) - limit} chars)"
        text = text[:limit]
    return text.translate(_VALUE_ESCAPES) + suffix


def redact_query(query_string: str) -> str:
    """The query string with the value of every credential replaced by `***`.

    A parameter is a credential when its name, percent-decoded, is one of SECRET_QUERY_NAMES
    in any case (`api%4Bey`, `%61piKey` and `APIKEY` are all `apiKey`), or when its value looks
    like an API key or a JWT wherever it appears. `&` and `;` both separate parameters here.
    """
    if not query_string:
        return query_string
    parts = _SEPARATORS.split(query_string)
    for i in range(0, len(parts), 2):
        part = parts[i]
        name, eq, value = part.partition("=")
        if eq and unquote_plus(name).strip().lower() in SECRET_QUERY_NAMES:
            parts[i] = f"{name}={REDACTED}"
        elif _looks_secret(unquote_plus(value if eq else name)):
            parts[i] = f"{name}={REDACTED}" if eq else REDACTED
    return "".join(parts)


def _looks_secret(text: str) -> bool:
    return "cflo_" in text or text.strip().startswith("eyJ")


def clean_query(query_string: str, limit: int = DEFAULT_LIMIT) -> str:
    """A query string for a log line: credentials redacted, then escaped and bounded."""
    return clean(redact_query(query_string), limit) if query_string else "-"


def escape_controls(text: str) -> str:
    """Control and line-breaking characters made visible (backslashes left as they are)."""
    return text.translate(_CONTROLS)


class LogFormatter(logging.Formatter):
    """One record, one line: its message has its control characters escaped, and each line of
    a traceback or stack is indented with `  | `."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        # Not the record's cached exc_text: another handler may have formatted it its own way.
        if record.exc_info:
            line += "\n" + _indent(self.formatException(record.exc_info))
        elif record.exc_text:
            line += "\n" + _indent(record.exc_text)
        if record.stack_info:
            line += "\n" + _indent(self.formatStack(record.stack_info))
        return line


def _indent(text: str) -> str:
    return "\n".join("  | " + escape_controls(line) for line in text.split("\n"))


# The attributes every LogRecord has: whatever else a record carries came as `extra=` fields.
_RECORD_FIELDS = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
    | {"message", "asctime", "color_message", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One record, one JSON object on one line (`CAUSEFLOW_LOG_FORMAT=json`): `time` (UTC,
    RFC 3339 with milliseconds), `level`, `logger`, `message`, the record's `extra` fields,
    and `exception` / `stack` as text when it has them. Every control character and line
    separator is escaped, so nothing a client sends can break a line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        try:
            line = orjson.dumps(out, default=str).decode()
        except TypeError:  # what orjson refuses (an integer past 64 bits): the slow way
            line = json.dumps(out, default=str, ensure_ascii=False)
        # JSON allows the Unicode line and paragraph separators raw; some readers split on them
        return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _utc(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
