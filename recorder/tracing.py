"""Correlation IDs for consortium runs, carried in ``contextvars``.

Every log line and every stored row reads its IDs from here, so code that
records something never has to be handed the IDs explicitly. Worker threads
must be started with :func:`run_in_context` (or a copy of the caller's context)
to see the caller's IDs.
"""

from __future__ import annotations

import contextvars
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

consortium_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "consortium_id", default=None
)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "trace_id", default=None
)
iteration_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "iteration_id", default=None
)
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
model_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "model_id", default=None
)
tracing_context_var: contextvars.ContextVar[TracingContext | None] = (
    contextvars.ContextVar("tracing_context", default=None)
)


def new_consortium_id() -> str:
    return "cons-" + secrets.token_hex(8)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_request_id() -> str:
    return "req-" + secrets.token_hex(6)


class TracingContext:
    """The IDs and running totals of one consortium run.

    ``metrics`` holds ``total_tokens``, ``input_tokens``, ``output_tokens``,
    ``model_calls``, ``model_errors`` and ``iterations``; ``token_usage`` maps
    each model to the tokens it used. Safe to update from worker threads.
    """

    def __init__(
        self,
        consortium_id: str | None = None,
        trace_id: str | None = None,
        parent: TracingContext | None = None,
    ) -> None:
        self.consortium_id = consortium_id or new_consortium_id()
        self.trace_id = trace_id or new_trace_id()
        # Totals also go to the parent: several runs started inside one
        # consortium_context() each get their own IDs, and the outer context
        # still counts them all.
        self.parent = parent
        # Set once a run has been recorded under this context's IDs.
        self.run_recorded = False
        self.token_usage: dict[str, int] = {}
        self.metrics: dict[str, int] = {
            "total_tokens": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "model_calls": 0,
            "model_errors": 0,
            "iterations": 0,
        }
        self._lock = threading.Lock()

    def add_tokens(
        self,
        model: str,
        tokens: int | None,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """Add ``tokens`` (a total) used by ``model``; ``None`` adds nothing."""
        with self._lock:
            if tokens:
                self.token_usage[model] = self.token_usage.get(model, 0) + tokens
                self.metrics["total_tokens"] += tokens
            self.metrics["input_tokens"] += input_tokens or 0
            self.metrics["output_tokens"] += output_tokens or 0
        if self.parent is not None:
            self.parent.add_tokens(
                model, tokens, input_tokens=input_tokens, output_tokens=output_tokens
            )

    def _increment(self, metric: str) -> None:
        with self._lock:
            self.metrics[metric] += 1
        if self.parent is not None:
            self.parent._increment(metric)

    def increment_model_calls(self) -> None:
        self._increment("model_calls")

    def increment_model_errors(self) -> None:
        self._increment("model_errors")

    def increment_iterations(self) -> None:
        self._increment("iterations")

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "consortium_id": self.consortium_id,
                "trace_id": self.trace_id,
                "metrics": dict(self.metrics),
                "token_usage": dict(self.token_usage),
            }


@contextmanager
def _bound(variable: contextvars.ContextVar[Any], value: Any) -> Iterator[None]:
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


@contextmanager
def consortium_context(
    consortium_id: str | None = None,
    trace_id: str | None = None,
    parent: TracingContext | None = None,
) -> Iterator[TracingContext]:
    """Start one consortium run: new (or given) ``consortium_id`` and ``trace_id``.

    :param parent: a context that should also count this run's totals.
    """
    context = TracingContext(consortium_id, trace_id, parent)
    with (
        _bound(tracing_context_var, context),
        _bound(consortium_id_var, context.consortium_id),
        _bound(trace_id_var, context.trace_id),
    ):
        yield context


@contextmanager
def iteration_context(iteration_id: int) -> Iterator[int]:
    """Mark the code inside as belonging to iteration ``iteration_id`` (1, 2, ...)."""
    context = tracing_context_var.get()
    if context is not None:
        context.increment_iterations()
    with _bound(iteration_id_var, iteration_id):
        yield iteration_id


@contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """One call to one model: a new (or given) ``request_id``."""
    request_id = request_id or new_request_id()
    with _bound(request_id_var, request_id):
        yield request_id


@contextmanager
def model_context(model_id: str) -> Iterator[str]:
    """Name the model that the code inside is calling."""
    with _bound(model_id_var, model_id):
        yield model_id


def current_ids() -> dict[str, Any]:
    """The correlation IDs in force here, leaving out those that are unset."""
    ids = {
        "consortium_id": consortium_id_var.get(),
        "trace_id": trace_id_var.get(),
        "iteration_id": iteration_id_var.get(),
        "request_id": request_id_var.get(),
        "model_id": model_id_var.get(),
    }
    return {key: value for key, value in ids.items() if value is not None}


def current_tracing_context() -> TracingContext | None:
    return tracing_context_var.get()


def run_in_context(function: Callable[..., T]) -> Callable[..., T]:
    """Wrap ``function`` so that it runs in a copy of the caller's context.

    Call this in the submitting thread; the returned callable can then be
    handed to a thread pool and still sees the caller's correlation IDs.
    """
    context = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return context.run(function, *args, **kwargs)

    return run
