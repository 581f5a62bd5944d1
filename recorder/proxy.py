"""The recording proxy: the one path every model call takes.

It times the call, reads token counts from ``response.usage()``, logs a
``model_call`` or ``model_error`` event and commits a ``model_calls`` row as
soon as the call returns, all under the call's own ``request_id``.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import llm

from .evaluation_store import EvaluationStore, utc_now, valid_text
from .logger import StructuredLogger
from .redaction import redact
from .tracing import (
    consortium_id_var,
    current_tracing_context,
    iteration_id_var,
    model_context,
    request_context,
    run_in_context,
)

TRANSIENT_ERROR_NAMES = (
    "ratelimit",
    "timeout",
    "connection",
    "serviceunavailable",
    "internalserver",
    "overloaded",
    "apiconnection",
    "temporar",
)
TRANSIENT_STATUS_CODES = {408, 409, 425, 429, 500, 502, 503, 504, 529}


@dataclass
class CallResult:
    """What one model call produced (or why it produced nothing)."""

    request_id: str
    model: str
    text: str | None
    input_tokens: int | None
    output_tokens: int | None
    duration_ms: float
    started_at: str
    status: str = "ok"
    error: str | None = None
    attempt: int = 1
    attempts: list[CallResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


class CallTimedOut(Exception):
    pass


def is_transient(error: BaseException) -> bool:
    """Whether a failed call is worth trying again (rate limits, 5xx, timeouts)."""
    if isinstance(error, CallTimedOut):
        # Limitation: a call that hit --timeout is not retried: its thread may
        # still be running (see _call_with_timeout), and a retry would stack
        # another one on a provider that is already slow.
        return False
    status = getattr(error, "status_code", None) or getattr(error, "status", None)
    if isinstance(status, int) and status in TRANSIENT_STATUS_CODES:
        return True
    name = type(error).__name__.lower()
    return any(part in name for part in TRANSIENT_ERROR_NAMES)


def describe_error(error: BaseException) -> str:
    message = str(error).strip() or type(error).__name__
    if type(error).__name__ not in message:
        message = f"{type(error).__name__}: {message}"
    return redact(message) or message


class RecordingProxy:
    """Call models through ``llm`` and record each call.

    :param store: where ``model_calls`` rows are committed.
    :param timeout: seconds a single call may take; ``None`` waits for ever.
    :param retries: how many times a transiently failing call is tried again.
    :param backoff_seconds: the first retry's delay; it doubles each time.
    """

    def __init__(
        self,
        store: EvaluationStore,
        logger: StructuredLogger | None = None,
        *,
        timeout: float | None = None,
        retries: int = 2,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.store = store
        self.logger = logger or StructuredLogger("recorder.proxy")
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds

    def call(
        self,
        model: llm.Model,
        prompt: str,
        *,
        model_name: str | None = None,
        system: str | None = None,
        role: str = "member",
        instance: int | None = None,
        label: str | None = None,
        schema: dict[str, Any] | None = None,
    ) -> CallResult:
        """Call ``model`` with ``prompt``, retrying transient failures."""
        model_name = model_name or model.model_id
        attempts: list[CallResult] = []
        for attempt in range(1, self.retries + 2):
            result, error = self._attempt(
                model,
                prompt,
                model_name=model_name,
                system=system,
                role=role,
                instance=instance,
                label=label,
                schema=schema,
                attempt=attempt,
            )
            attempts.append(result)
            if error is None or not is_transient(error) or attempt > self.retries:
                break
            delay = self.backoff_seconds * 2 ** (attempt - 1)
            time.sleep(delay * (0.5 + random.random()))
        final = attempts[-1]
        final.attempts = attempts
        return final

    def _attempt(
        self,
        model: llm.Model,
        prompt: str,
        *,
        model_name: str,
        system: str | None,
        role: str,
        instance: int | None,
        label: str | None,
        schema: dict[str, Any] | None,
        attempt: int,
    ) -> tuple[CallResult, BaseException | None]:
        with request_context() as request_id, model_context(model_name):
            self.logger.log_model_request(
                model_name, prompt, role=role, instance=instance, attempt=attempt
            )
            started_at = utc_now()
            start = time.perf_counter()
            text = input_tokens = output_tokens = None
            error: BaseException | None = None
            try:
                text, input_tokens, output_tokens = self._run(
                    model, prompt, system, schema
                )
            except Exception as raised:
                error = raised
            duration_ms = (time.perf_counter() - start) * 1000

            status = "ok"
            error_text = None
            if isinstance(error, CallTimedOut):
                status, error_text = "timeout", str(error)
            elif error is not None:
                status, error_text = "error", describe_error(error)
            result = CallResult(
                request_id=request_id,
                model=model_name,
                text=text,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                duration_ms=duration_ms,
                started_at=started_at,
                status=status,
                error=error_text,
                attempt=attempt,
            )
            self._record(result, prompt, system, role, instance, label)
            return result, error

    def _run(
        self,
        model: llm.Model,
        prompt: str,
        system: str | None,
        schema: dict[str, Any] | None,
    ) -> tuple[str, int | None, int | None]:
        def call() -> tuple[str, int | None, int | None]:
            options: dict[str, Any] = {"system": system}
            if schema is not None:
                options["schema"] = schema
            response = model.prompt(prompt, stream=False, **options)
            # A plugin may hand back undecodable bytes as lone surrogates.
            text = valid_text(response.text())
            usage = response.usage()
            return text, usage.input, usage.output

        if self.timeout is None:
            return call()
        return _call_with_timeout(call, self.timeout)

    def _record(
        self,
        result: CallResult,
        prompt: str,
        system: str | None,
        role: str,
        instance: int | None,
        label: str | None,
    ) -> None:
        context = current_tracing_context()
        if context is not None:
            context.increment_model_calls()
            if result.ok:
                context.add_tokens(
                    result.model,
                    result.tokens,
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                )
            else:
                context.increment_model_errors()
        self.store.record_model_call(
            request_id=result.request_id,
            consortium_id=consortium_id_var.get(),
            iteration_id=iteration_id_var.get(),
            role=role,
            model=result.model,
            instance=instance,
            label=label,
            attempt=result.attempt,
            prompt=prompt,
            system=system,
            response=result.text,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            duration_ms=round(result.duration_ms, 3),
            started_at=result.started_at,
            status=result.status,
            error=result.error,
        )
        fields = {"role": role, "instance": instance, "attempt": result.attempt}
        if result.ok:
            self.logger.log_model_call(
                result.model,
                prompt,
                result.text or "",
                result.tokens,
                result.duration_ms,
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                **fields,
            )
        else:
            self.logger.log_model_error(
                result.model, prompt, result.error or "", result.duration_ms, **fields
            )


def _call_with_timeout(function: Any, timeout: float) -> Any:
    """Run ``function`` in a daemon thread and give up waiting after ``timeout``.

    Limitation: ``llm``'s synchronous models cannot be cancelled, so a call that
    times out keeps running in its thread until it ends or the process exits;
    its late answer is discarded.
    """
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # handed to the waiting thread
            outcome["error"] = error
        finally:
            finished.set()

    thread = threading.Thread(target=run_in_context(target), daemon=True)
    thread.start()
    if not finished.wait(timeout):
        raise CallTimedOut(f"Timed out after {timeout:g} seconds")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
