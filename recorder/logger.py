"""Structured JSON log lines that carry the current correlation IDs.

Every line is one JSON object (python-json-logger) with ``timestamp``,
``name``, ``levelname``, ``message``, the IDs in force (``consortium_id``,
``trace_id``, ``iteration_id``, ``request_id``, ``model_id``) and the event's
own fields, ``event_type`` first among them. Lines go to a log file
(``$LLM_CONSORTIUM_LOG_FILE``, default ``~/.llm/consortium.log``) and, after
:func:`log_to_stderr`, to stderr. ``$LLM_CONSORTIUM_LOG_LEVEL`` sets the level.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

try:
    from pythonjsonlogger.json import JsonFormatter
except ImportError:  # python-json-logger < 3
    from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore

from .redaction import redact
from .tracing import current_ids

LOG_FILE_ENVIRONMENT_VARIABLE = "LLM_CONSORTIUM_LOG_FILE"
LOG_LEVEL_ENVIRONMENT_VARIABLE = "LLM_CONSORTIUM_LOG_LEVEL"
DEFAULT_LOG_FILE = pathlib.Path("~/.llm/consortium.log")
PREVIEW_LENGTH = 100
EVENT_TYPES = (
    "consortium_start",
    "iteration_start",
    "model_request",
    "model_call",
    "model_error",
    "arbiter_decision",
    "iteration_end",
    "consortium_end",
)


def default_log_file() -> pathlib.Path:
    configured = os.environ.get(LOG_FILE_ENVIRONMENT_VARIABLE)
    return pathlib.Path(configured or DEFAULT_LOG_FILE).expanduser()


def configured_level() -> int:
    name = os.environ.get(LOG_LEVEL_ENVIRONMENT_VARIABLE, "INFO").strip().upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO


def preview(text: str | None, length: int = PREVIEW_LENGTH) -> str:
    """The first ``length`` characters of ``text`` on one line, ``...`` if cut."""
    if not text:
        return ""
    flat = " ".join(text[: length * 4].split())
    return flat if len(flat) <= length else flat[: length - 3] + "..."


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines with secrets replaced by ``[REDACTED]``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record)) or ""


def _utc_timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, timezone.utc)
    return moment.isoformat(timespec="milliseconds")


class _TimestampFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.timestamp = _utc_timestamp(record)
        return True


def _formatter() -> logging.Formatter:
    return RedactingJsonFormatter(
        "%(timestamp)s %(name)s %(levelname)s %(message)s",
        json_ensure_ascii=False,
    )


class _Handlers:
    """The handlers shared by every StructuredLogger, set up once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.file_handler: logging.Handler | None = None
        self.file_path: pathlib.Path | None = None
        self.stream_handler: logging.Handler | None = None
        self.loggers: list[logging.Logger] = []
        self.file_problem: str | None = None

    def attach(self, logger: logging.Logger) -> None:
        with self._lock:
            if logger in self.loggers:
                return
            self.loggers.append(logger)
            logger.propagate = False
            logger.setLevel(configured_level())
            if not any(isinstance(f, _TimestampFilter) for f in logger.filters):
                logger.addFilter(_TimestampFilter())
            self._ensure_file_handler()
            for handler in (self.file_handler, self.stream_handler):
                if handler is not None and handler not in logger.handlers:
                    logger.addHandler(handler)

    def _ensure_file_handler(self) -> None:
        path = default_log_file()
        if self.file_handler is not None and self.file_path == path:
            return
        if self.file_handler is not None:
            self._replace(self.file_handler, None)
            self.file_handler.close()
            self.file_handler = None
        self.file_problem = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Opened now, not at the first line: a log file that cannot be
            # written is found before a run starts, not in the middle of one.
            handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as error:
            # Python code using StructuredLogger goes on without the file;
            # 'consortium-record run' refuses to start (see log_file_problem).
            self.file_problem = (
                f"Cannot write the log file {path}: {error.strerror or error}; "
                f"set {LOG_FILE_ENVIRONMENT_VARIABLE} to a file you can write."
            )
            handler = logging.NullHandler()
        handler.setFormatter(_formatter())
        self.file_handler = handler
        self.file_path = path
        for logger in self.loggers:
            logger.addHandler(handler)

    def _replace(
        self, old: logging.Handler | None, new: logging.Handler | None
    ) -> None:
        for logger in self.loggers:
            if old is not None:
                logger.removeHandler(old)
            if new is not None:
                logger.addHandler(new)

    def set_stream(self, stream: TextIO | None) -> None:
        with self._lock:
            new = None
            if stream is not None:
                new = logging.StreamHandler(stream)
                new.setFormatter(_formatter())
            self._replace(self.stream_handler, new)
            self.stream_handler = new

    def reconfigure(self) -> None:
        """Take up a changed log file or level from the environment."""
        with self._lock:
            self._ensure_file_handler()
            for logger in self.loggers:
                logger.setLevel(configured_level())


_handlers = _Handlers()


def log_to_stderr(enabled: bool = True, stream: TextIO | None = None) -> None:
    """Also write every log line to ``stream`` (default: stderr)."""
    _handlers.set_stream((stream or sys.stderr) if enabled else None)


def reconfigure_logging() -> None:
    """Read ``LLM_CONSORTIUM_LOG_FILE`` and ``LLM_CONSORTIUM_LOG_LEVEL`` again."""
    _handlers.reconfigure()


def log_file_problem() -> str | None:
    """Why the log file cannot be written, as a sentence; ``None`` if it can."""
    with _handlers._lock:
        _handlers._ensure_file_handler()
        return _handlers.file_problem


class StructuredLogger:
    """A logger whose every line is JSON carrying the current correlation IDs.

    :param name: the logger's name, shown as ``name`` in each line.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.logger = logging.getLogger(name)
        _handlers.attach(self.logger)

    def log(self, level: int, message: str, **fields: Any) -> None:
        if not self.logger.isEnabledFor(level):
            return
        extra = current_ids()
        extra.update(fields)
        self.logger.log(level, message, extra=extra)

    def debug(self, message: str, **fields: Any) -> None:
        self.log(logging.DEBUG, message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.log(logging.INFO, message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.log(logging.WARNING, message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.log(logging.ERROR, message, **fields)

    def log_model_request(self, model: str, prompt: str, **fields: Any) -> None:
        """One ``model_request`` event (DEBUG): a call is about to be made."""
        if not self.logger.isEnabledFor(logging.DEBUG):
            return
        self.debug(
            f"Model request: {model} ({len(prompt)} characters)",
            model_id=model,
            event_type="model_request",
            prompt_length=len(prompt),
            prompt_preview=preview(prompt),
            **fields,
        )

    def log_model_call(
        self,
        model: str,
        prompt: str,
        response: str,
        tokens: int | None,
        duration_ms: float,
        confidence: float | None = None,
        **fields: Any,
    ) -> None:
        """One ``model_call`` event: a model answered."""
        token_text = "tokens not reported" if tokens is None else f"{tokens} tokens"
        self.info(
            f"Model call: {model} ({token_text}, {duration_ms:.2f}ms)",
            model_id=model,
            duration_ms=round(duration_ms, 2),
            tokens=tokens,
            confidence=confidence,
            event_type="model_call",
            prompt_preview=preview(prompt),
            response_preview=preview(response),
            **fields,
        )

    def log_model_error(
        self,
        model: str,
        prompt: str,
        error: str,
        duration_ms: float,
        **fields: Any,
    ) -> None:
        """One ``model_error`` event: a model call failed or timed out."""
        self.warning(
            f"Model error: {model} ({error})",
            model_id=model,
            duration_ms=round(duration_ms, 2),
            event_type="model_error",
            error=error,
            prompt_preview=preview(prompt),
            **fields,
        )

    def log_arbiter_decision(
        self,
        arbiter_model: str,
        confidence: float | None,
        needs_iteration: bool | None = None,
        duration_ms: float | None = None,
        tokens: int | None = None,
        **fields: Any,
    ) -> None:
        """One ``arbiter_decision`` event: the arbiter judged an iteration."""
        shown = "unknown" if confidence is None else f"{confidence:.3f}"
        self.info(
            f"Arbiter decision: {arbiter_model} (confidence {shown})",
            model_id=arbiter_model,
            confidence=confidence,
            needs_iteration=needs_iteration,
            duration_ms=None if duration_ms is None else round(duration_ms, 2),
            tokens=tokens,
            event_type="arbiter_decision",
            **fields,
        )
