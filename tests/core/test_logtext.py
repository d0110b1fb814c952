"""`logtext`: client text made fit for a log line."""

from __future__ import annotations

import logging
import sys
from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causeflow.ingest.auth import QUERY_KEY, key_from_request
from causeflow.logtext import LogFormatter, clean, clean_query, redact_query

pytestmark = pytest.mark.unit

KEY = "cflo_" + "a" * 64


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        (f"api%4Bey={KEY}", "api%4Bey=***"),
        (f"%61piKey={KEY}&b=2", "%61piKey=***&b=2"),
        (f"%61%70%69%4b%65%79={KEY}", "%61%70%69%4b%65%79=***"),
        (f"ApiKey={KEY}", "ApiKey=***"),
        (f"+apiKey+={KEY}", "+apiKey+=***"),
        ("%74oken=abc;x=1", "%74oken=***;x=1"),
        (
            "access_token=t&ticket=u&password=p&secret=s",
            "access_token=***&ticket=***&password=***&secret=***",
        ),
        # values that are credentials whatever their name, even with no name at all
        (f"k={KEY}", "k=***"),
        (f"q=x%20{KEY[:10]}", "q=***"),
        (f"{KEY}", "***"),
        ("jwt=eyJhbGciOi.e30.sig", "jwt=***"),
        ("plain=1&next=%2Fui", "plain=1&next=%2Fui"),
        ("", ""),
    ],
)
def test_redact_query_by_decoded_name_and_by_value(query: str, redacted: str):
    assert redact_query(query) == redacted


@given(
    st.sampled_from(["apiKey", "api%4Bey", "%61piKey", "%61%70%69%4B%65%79", "api%4bey"]),
    st.lists(st.sampled_from(["a=1", "b=", "c", "x=%26", "&"]), max_size=3),
)
@settings(max_examples=60, deadline=None)
def test_every_spelling_that_authenticates_is_redacted(name: str, others: list[str]):
    query = "&".join([*others, f"{name}={KEY}"])
    assert parse_qs(query)[QUERY_KEY] == [KEY]  # it is a credential ...
    assert key_from_request({}, query) == KEY
    assert KEY not in redact_query(query)  # ... and never written


def test_clean_escapes_and_bounds():
    assert clean("a\nb\r\tc\x00\x7f\x85\u2028\u202e\\") == (
        "a\\nb\\r\\tc\\x00\\x7f\\x85\\u2028\\u202e\\\\"
    )
    assert clean("é☕ ok") == "é☕ ok"
    long = clean("x" * 1000, 50)
    assert long.startswith("x" * 50) and long.endswith("...(+950 chars)") and len(long) < 70
    assert clean(ValueError("bad\nline")) == "bad\\nline"
    assert clean_query("") == "-"
    assert clean_query(f"apiKey={KEY}&n=%0A\n") == "apiKey=***&n=%0A\\n"


def test_the_formatter_writes_one_line_per_record_and_indents_tracebacks():
    formatter = LogFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("boom\nINFO causeflow.forged: owned")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "causeflow.x", logging.ERROR, __file__, 1, "got %s", ("a\nINFO causeflow.y: z",), exc_info
    )
    lines = formatter.format(record).split("\n")
    assert lines[0] == "ERROR causeflow.x: got a\\nINFO causeflow.y: z"
    assert len(lines) > 2 and all(line.startswith("  | ") for line in lines[1:])
    assert any("INFO causeflow.forged: owned" in line for line in lines[1:])


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("causeflow.test", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_the_json_formatter_writes_one_object_per_line_with_extra_fields():
    import orjson

    from causeflow.logtext import JsonFormatter

    formatter = JsonFormatter()
    record = _record("tenant %s\nforged: line", "t\u2028x", route="/v1/x", status=404, ok=None)
    line = formatter.format(record)
    assert "\n" not in line and "\u2028" not in line
    out = orjson.loads(line)
    assert out["message"] == "tenant t\u2028x\nforged: line"  # kept whole, escaped by JSON
    assert (out["level"], out["logger"]) == ("WARNING", "causeflow.test")
    assert out["time"].endswith("Z") and out["time"][10] == "T"
    assert (out["route"], out["status"], out["ok"]) == ("/v1/x", 404, None)
    assert "args" not in out and "msg" not in out and "exc_info" not in out


def test_the_json_formatter_puts_the_traceback_in_a_field():
    import orjson

    from causeflow.logtext import JsonFormatter

    try:
        raise ValueError("boom\nline two")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = orjson.loads(line)
    assert out["message"] == "failed"
    assert (
        out["exception"].startswith("Traceback")
        and "ValueError: boom\nline two" in out["exception"]
    )


def test_the_json_formatter_writes_what_orjson_refuses():
    import json

    from causeflow.logtext import JsonFormatter

    out = json.loads(JsonFormatter().format(_record("big", count=2**70, thing=object())))
    assert out["count"] == 2**70
    assert out["thing"].startswith("<object object")


@pytest.mark.parametrize(
    ("given", "kept"), [("text", "text"), ("JSON", "json"), (" json ", "json")]
)
def test_the_log_format_setting(given: str, kept: str):
    from causeflow.settings import Settings

    assert Settings(log_format=given).log_format == kept


def test_an_unknown_log_format_is_refused():
    from pydantic import ValidationError

    from causeflow.settings import Settings

    with pytest.raises(ValidationError, match="unknown log format"):
        Settings(log_format="yaml")
