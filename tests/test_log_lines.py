"""Structured log lines: the direct write and the logging path render the same line.

`emit()` writes straight to the service's own JSON handler when nothing else
would see the event; these tests hold that shortcut to the ordinary path and
check that any other listener (a handler, a filter, a level) turns it off.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from identity_service.observability.logs import (
    JsonFormatter,
    JsonLineHandler,
    configure_logging,
    emit,
)

SERVICE = "identity_service"
FIELDS = {"event": "mint", "user_id": "user-1", "attributes": ["plan", "é"], "exp": 10}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The service's production logging on a string, undone afterwards."""
    root = logging.getLogger(SERVICE)
    saved = (root.handlers[:], root.level, root.propagate)
    out = io.StringIO()
    configure_logging(stream=out)
    yield out
    root.handlers[:], root.level, root.propagate = saved


@contextmanager
def alone() -> Iterator[None]:
    """Only the service's own handler on its logger (pytest adds its capture handlers)."""
    root = logging.getLogger(SERVICE)
    saved = root.handlers[:]
    root.handlers[:] = [h for h in saved if isinstance(h, JsonLineHandler)]
    try:
        yield
    finally:
        root.handlers[:] = saved


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_direct_line_is_the_formatters_line(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger(f"{SERVICE}.audit")

    def no_record(*args: object, **kwargs: object) -> logging.LogRecord:
        raise AssertionError("the direct path builds no LogRecord")

    monkeypatch.setattr(logger, "makeRecord", no_record)
    with alone():
        emit(logger, "mint", FIELDS)
    [direct] = _lines(stream)
    record = logging.LogRecord(f"{SERVICE}.audit", logging.INFO, "x", 0, "mint", (), None)
    record.fields = FIELDS
    formatted = json.loads(JsonFormatter().format(record))
    assert direct.pop("time") == pytest.approx(formatted.pop("time"), abs=5)
    assert direct == formatted
    assert list(direct) == list(formatted)  # same key order: time, level, logger, message, ...
    assert stream.getvalue().count("\n") == 1


def test_another_handler_gets_the_record_and_the_line_is_still_written(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = _Collector()
    logger = logging.getLogger(f"{SERVICE}.audit")
    monkeypatch.setattr(logger, "handlers", [*logger.handlers, collector])
    with alone():
        emit(logger, "mint", FIELDS)
    assert [r.getMessage() for r in collector.records] == ["mint"]
    assert collector.records[0].fields == FIELDS  # type: ignore[attr-defined]
    assert [line["message"] for line in _lines(stream)] == ["mint"]


def test_a_filter_on_the_logger_still_decides(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger(f"{SERVICE}.audit")
    monkeypatch.setattr(logger, "filters", [logging.Filter("nothing.matches")])
    with alone():
        emit(logger, "mint", FIELDS)
    assert stream.getvalue() == ""


def test_a_handler_level_above_info_still_decides(stream: io.StringIO) -> None:
    with alone():
        [handler] = logging.getLogger(SERVICE).handlers
        handler.setLevel(logging.WARNING)
        emit(logging.getLogger(f"{SERVICE}.access"), "request", {"status": 200})
    assert stream.getvalue() == ""


def test_a_disabled_logger_writes_nothing(stream: io.StringIO) -> None:
    logger = logging.getLogger(f"{SERVICE}.audit")
    logger.disabled = True
    try:
        with alone():
            emit(logger, "mint", FIELDS)
    finally:
        logger.disabled = False
    assert stream.getvalue() == ""


def test_a_broken_stream_does_not_break_the_caller(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    stream.close()  # writes now raise ValueError
    with alone():
        emit(logging.getLogger(f"{SERVICE}.audit"), "mint", FIELDS)  # must not raise
    assert "Logging error" in capsys.readouterr().err


# -- lines stay one line of ASCII, whatever text comes from outside --------------------


@pytest.mark.parametrize(
    "text", ["/x\u2028y", "/x\u0085y", "caf\u00e9", "a\ud800", "line\nbreak", "tab\t"]
)
def test_outside_text_cannot_split_or_drop_a_line(stream: io.StringIO, text: str) -> None:
    with alone():
        emit(logging.getLogger(f"{SERVICE}.access"), "request", {"path": text, "user_id": text})
    raw = stream.getvalue()
    assert raw.isascii()
    assert raw.count("\n") == 1 and raw.endswith("\n")
    assert len(raw.splitlines()) == 1
    [line] = _lines(stream)
    assert line["path"] == text


def test_a_replaced_formatter_is_used(stream: io.StringIO) -> None:
    with alone():
        [handler] = logging.getLogger(SERVICE).handlers
        handler.setFormatter(logging.Formatter("custom %(message)s"))
        emit(logging.getLogger(f"{SERVICE}.audit"), "mint", FIELDS)
    assert stream.getvalue() == "custom mint\n"
