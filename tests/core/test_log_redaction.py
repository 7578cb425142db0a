"""Query strings never reach server logs (apps.core.logging, wired in settings.LOGGING)."""

from __future__ import annotations

import logging

import pytest

from apps.core.logging import QueryStringRedactor, redact_query_strings

SERVER_LOGGERS = ["uvicorn.error", "uvicorn.access", "daphne.server", "daphne.http_protocol",
                  "daphne.ws_protocol", "django.request", "django.server"]


def _record(msg, args) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)


def test_a_websocket_line_keeps_its_path_and_loses_its_query():
    record = _record('%s - "WebSocket %s" [accepted]', ("127.0.0.1:5555", "/ws/ping/?ticket=abc.def:123"))

    assert QueryStringRedactor().filter(record) is True
    assert record.getMessage() == '127.0.0.1:5555 - "WebSocket /ws/ping/?[redacted]" [accepted]'


def test_an_access_line_keeps_its_shape():
    args = ("127.0.0.1:5555", "GET", "/api/x/?secret=1&b=2", "1.1", 200)
    record = _record('%s - "%s %s HTTP/%s" %d', args)

    QueryStringRedactor().filter(record)

    assert record.args == ("127.0.0.1:5555", "GET", "/api/x/?[redacted]", "1.1", 200)


@pytest.mark.parametrize(("msg", "args", "expected"), [
    ("Not Found: /a/?token=xyz", None, "Not Found: /a/?[redacted]"),
    ("%(path)s done", ({"path": "/b?k=v"},), "/b?[redacted] done"),
    ("nothing to hide here? no", None, "nothing to hide here? no"),
])
def test_messages_and_mapping_arguments(msg, args, expected):
    record = _record(msg, args)

    QueryStringRedactor().filter(record)

    assert record.getMessage() == expected


def test_settings_attach_the_filter_to_every_server_logger_without_touching_handlers():
    for name in SERVER_LOGGERS:
        assert any(isinstance(f, QueryStringRedactor) for f in logging.getLogger(name).filters), name


def test_the_factory_attaches_once_and_leaves_handlers_alone():
    logger = logging.getLogger("tests.redaction.example")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        redact_query_strings(["tests.redaction.example"])
        redact_query_strings(["tests.redaction.example"])

        assert sum(isinstance(f, QueryStringRedactor) for f in logger.filters) == 1
        assert logger.handlers == [handler]
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()
