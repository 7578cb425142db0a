"""Query strings out of server logs.

A URL's query may carry a secret (a WebSocket ticket, a signed link), and ASGI servers log
the full path: uvicorn's ``uvicorn.error`` logger writes ``"WebSocket /ws/ping/?..." [accepted]``
even with ``--no-access-log``. ``settings.LOGGING`` builds one ``QueryStringRedactor`` through
``redact_query_strings``, which attaches it to each server logger, so every record they emit
has ``?...`` replaced by ``?[redacted]`` before any handler formats it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "?[redacted]"
# "?" followed by a query: runs to the next whitespace or quote, as paths appear in log lines.
_QUERY = re.compile(r"\?[^\s\"'<>]+")


def redact(value: Any) -> Any:
    """``value`` with every query string replaced; non-strings are returned unchanged."""
    return _QUERY.sub(REDACTED, value) if isinstance(value, str) else value


class QueryStringRedactor(logging.Filter):
    """Rewrites a record's message and arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {key: redact(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(redact(value) for value in record.args)
        return True


def redact_query_strings(loggers: Iterable[str] = ()) -> QueryStringRedactor:
    """Filter factory for ``LOGGING["filters"]``: attaches the filter to ``loggers`` by name.

    Attaching here, instead of listing the loggers under ``LOGGING["loggers"]``, leaves their
    handlers, levels and propagation as the server configured them.
    """
    redactor = QueryStringRedactor()
    for name in loggers:
        target = logging.getLogger(name)
        if not any(isinstance(f, QueryStringRedactor) for f in target.filters):
            target.addFilter(redactor)
    return redactor
