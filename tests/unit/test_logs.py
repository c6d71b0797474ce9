"""Log lines carry their structured fields (`extra=`) as key=value after the message, on one
line; the standard LogRecord attributes stay out, and exceptions are still printed. As JSON, a
line is one object with the same fields, and the traceback a string in it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from rapport.logs import QUIET, FieldsFormatter, JsonFormatter, configure


def record(msg: str, *, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("rapport.test")
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logger.makeRecord(
        logger.name, logging.ERROR, __file__, 1, msg, (), exc_info, extra=extra or None
    )


def test_extra_fields_follow_the_message() -> None:
    f = FieldsFormatter("%(levelname)s %(name)s %(message)s")
    line = f.format(
        record("session failed", session_id="ses_01", stream="cam 1", reason="consent_revoked")
    )
    assert line == (
        'ERROR rapport.test session failed session_id=ses_01 stream="cam 1" reason=consent_revoked'
    )


def test_standard_attributes_are_not_fields() -> None:
    line = FieldsFormatter("%(message)s").format(record("retention purge"))
    assert line == "retention purge"


def test_values_are_quoted_so_the_line_stays_one_line_and_parseable() -> None:
    line = FieldsFormatter("%(message)s").format(
        record(
            "odd\nmessage",
            empty="",
            multi="a\nb",
            quote='say "hi"',
            eq="a=b",
            n=3,
            ratio=0.5,
            none=None,
        )
    )
    assert "\n" not in line
    assert line == (
        'odd\\nmessage empty="" multi="a\\nb" quote="say \\"hi\\"" eq="a=b" n=3 ratio=0.5 none=None'
    )


def test_an_exception_is_printed_after_the_line() -> None:
    try:
        raise ConnectionError("database went away")
    except ConnectionError as e:
        r = record("background loop failed", exc=e, loop="webhooks")
    first, *rest = FieldsFormatter("%(message)s").format(r).splitlines()
    assert first == "background loop failed loop=webhooks"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ConnectionError: database went away"


@pytest.fixture
def logging_restored() -> Iterator[None]:
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in QUIET)]
    saved = [(lg, list(lg.handlers), lg.level) for lg in loggers]
    yield
    for lg, handlers, level in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)


def test_configure_installs_one_handler_with_the_fields(logging_restored: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure(logging.INFO, first)
    configure(logging.WARNING, second)  # again (a second command in one process): replaces it
    log = logging.getLogger("rapport.service.runs")
    log.info("not shown at WARNING")
    log.warning("session failed", extra={"session_id": "ses_01"})
    assert first.getvalue() == ""
    (line,) = second.getvalue().splitlines()
    assert line.endswith(" WARNING rapport.service.runs session failed session_id=ses_01")


def test_chatty_libraries_log_warnings_only(logging_restored: None) -> None:
    out = io.StringIO()
    configure(logging.INFO, out)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin")
    logging.getLogger("httpx").info("HTTP Request: POST")
    logging.getLogger("httpx").warning("kept")
    logging.getLogger("rapport.service.rooms").info("bot joining room")
    assert [line.split(" ", 3)[3] for line in out.getvalue().splitlines()] == [
        "httpx kept",
        "rapport.service.rooms bot joining room",
    ]


def test_json_lines_hold_the_record_and_its_fields() -> None:
    r = record("session failed", session_id="ses_01", n=3, ratio=0.5, none=None, path=io)
    r.created = 1_780_000_000.123
    line = JsonFormatter().format(r)
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-05-28T20:26:40.123+00:00",
        "level": "ERROR",
        "logger": "rapport.test",
        "message": "session failed",
        "session_id": "ses_01",
        "n": 3,
        "ratio": 0.5,
        "none": None,
        "path": str(io),  # not JSON: its str()
    }


def test_json_keeps_its_own_keys_and_renames_a_field_that_clashes() -> None:
    out = json.loads(JsonFormatter().format(record("odd\nmessage", level="x", logger="y")))
    assert out["message"] == "odd\nmessage" and out["level"] == "ERROR"
    assert out["field_level"] == "x" and out["field_logger"] == "y"


def test_json_puts_the_traceback_in_one_string_field() -> None:
    try:
        raise ConnectionError("database went away")
    except ConnectionError as e:
        r = record("background loop failed", exc=e, loop="webhooks")
    line = JsonFormatter().format(r)
    assert len(line.splitlines()) == 1
    out = json.loads(line)
    assert out["loop"] == "webhooks"
    assert out["exception"].startswith("Traceback (most recent call last):")
    assert out["exception"].endswith("ConnectionError: database went away")


def test_configure_json_writes_one_object_per_line(logging_restored: None) -> None:
    out = io.StringIO()
    configure(logging.INFO, out, fmt="json")
    logging.getLogger("rapport.service.runs").info("session ended", extra={"session_id": "s"})
    logging.getLogger("rapport.service.runs").info("and another")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["message"], x.get("session_id")) for x in lines] == [
        ("session ended", "s"),
        ("and another", None),
    ]
