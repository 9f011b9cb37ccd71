"""Structured logs: one JSON object per line on stderr, with channel, external id, case number and
bus position as fields (never message bodies). Library logs (aiokafka, asyncio, aiohttp, ...) are
rendered the same way, so every line of the daemon's output parses as JSON; an exception a library
logs (aiohttp's "Error handling request", asyncio's exception handler) carries its stack, once, as
the string field `exception`.

A request aiohttp's parser refuses (bad request line, bad header: a 4xx) is the client's mistake, not
ours: aiohttp logs it at error with a stack; here it becomes `http.bad_request` at info with the
client's address, the status and the parser's message."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_FIELDS = "casegate_fields"
"""LogRecord attribute: fields a filter below adds to the record's JSON object."""


class ClientErrorsAtInfo(logging.Filter):
    """Turns aiohttp's error-level record of a request its HTTP parser refused with a 4xx into
    `http.bad_request` at info (without the stack: it is aiohttp's parser, not a fault of ours), and
    drops it if info is below the configured level. Every other record passes unchanged."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if (record.name.startswith("aiohttp.") and isinstance(exc, HttpProcessingError)
                and 400 <= exc.code < 500):
            args = record.args if isinstance(record.args, tuple) else ()
            setattr(record, _FIELDS, {"remote": args[0] if args else None, "status": exc.code,
                                      "error": exc.message})
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "http.bad_request", ()
            record.exc_info, record.exc_text = None, None
        return record.levelno >= self.level


def _filter_fields(_logger: Any, _name: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    event_dict.update(getattr(event_dict.get("_record"), _FIELDS, {}))
    return event_dict


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ClientErrorsAtInfo(LEVELS[level]))
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        # a stdlib record's exc_info is a (type, value, traceback) tuple: format_exc_info renders it
        # as the `exception` string (without it the renderer wrote `<traceback object at 0x…>`)
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _filter_fields,
                           structlog.processors.format_exc_info]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    for noisy in ("aiokafka", "mail.log", "aiosqlite", "alembic", "asyncio"):
        logging.getLogger(noisy).setLevel(max(LEVELS[level], logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        # a line and its newline in one write: processes sharing one log (the supervisor's) never interleave
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
