"""``consortium-record``: run traced consortiums and answer from the store."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import click

from .evaluation_store import StoreError, default_db_path, valid_text
from .judging import JUDGING_METHODS
from .reports import db_option, register_report_commands
from .tracing import consortium_context, run_in_context

if TYPE_CHECKING:
    from .orchestrator import Consortium

EXIT_INTERRUPTED = 130


@click.group()
@click.version_option(package_name="datasette-consortium")
def cli() -> None:
    """Run LLM consortiums with tracing, and study what they recorded.

    Every model call, arbiter decision and run goes into evaluations.db;
    JSON log lines go to ~/.llm/consortium.log (and stderr with --trace).
    """


@cli.command()
@click.argument("prompt", required=False)
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    required=True,
    metavar="MODEL[:COUNT]",
    help="A member model, as 'llm models' names it; ':COUNT' asks it COUNT times "
    "(repeatable)",
)
@click.option("--arbiter", help="The judging model [default: the first -m model]")
@click.option(
    "--judging-method",
    type=click.Choice(JUDGING_METHODS),
    default="default",
    show_default=True,
    help="default: synthesis + ranking; rank: the top-ranked answer is the result; "
    "consensus: no arbiter model, the answer most similar to the others wins",
)
@click.option(
    "--confidence-threshold",
    type=click.FloatRange(0, 1),
    default=0.8,
    show_default=True,
    help="Stop iterating once the arbiter is this confident",
)
@click.option(
    "--min-iterations",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Always run at least this many iterations",
)
@click.option(
    "--max-iterations",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Never run more than this many iterations",
)
@click.option("--system", help="A system prompt for the member models")
@db_option
@click.option(
    "--trace",
    is_flag=True,
    help="Print each run's Consortium ID and Trace ID, and the JSON log lines, "
    "to stderr",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print each run's whole result as JSON"
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds each model call may take before it is recorded as timed out",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Times a transiently failing model call is tried again, with backoff",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Consortiums run at once when prompts come from stdin",
)
def run(
    prompt: str | None,
    models: tuple[str, ...],
    arbiter: str | None,
    judging_method: str,
    confidence_threshold: float,
    min_iterations: int,
    max_iterations: int,
    system: str | None,
    db_path: str | None,
    trace: bool,
    as_json: bool,
    timeout: float | None,
    retries: int,
    concurrency: int,
) -> None:
    """Ask the member models PROMPT, have the arbiter judge them, record it all.

    With no PROMPT, prompts are read from stdin, one per line, each its own
    run. Stdout carries only the final answers (or JSON with --json).

    Example:

        consortium-record run -m echo:2 -m llama3:8b --arbiter gpt-4o "Why?"
    """
    prompts = _prompts(prompt)
    if min_iterations > max_iterations:
        raise click.UsageError(
            f"--min-iterations ({min_iterations}) cannot be more than "
            f"--max-iterations ({max_iterations})."
        )
    # Imported here so that the read-only commands start without llm.
    from .logger import log_file_problem, log_to_stderr, reconfigure_logging
    from .orchestrator import Consortium, ConsortiumError

    reconfigure_logging()
    problem = log_file_problem()
    if problem:
        raise click.ClickException(problem)
    if trace:
        log_to_stderr()
    try:
        consortium = Consortium(
            list(models),
            arbiter,
            judging_method,
            confidence_threshold=confidence_threshold,
            min_iterations=min_iterations,
            max_iterations=max_iterations,
            system=None if system is None else valid_text(system),
            db_path=db_path or default_db_path(),
            timeout=timeout,
            retries=retries,
            concurrency=concurrency,
        )
    except (ConsortiumError, StoreError) as error:
        raise click.ClickException(str(error)) from None

    outcome = _BatchOutcome(len(prompts))
    try:
        consortium.store.mark_interrupted_runs()
        for result in _run_prompts(consortium, prompts, concurrency, trace):
            outcome.report(result, as_json)
    except sqlite3.DatabaseError as error:
        # A store that is corrupt deep inside (or locked for longer than the
        # busy timeout) is only found out when a write reaches it.
        raise click.ClickException(
            f"Cannot write to {consortium.store.path}: {error}; "
            f"{outcome.done} of {len(prompts)} prompts were done."
        ) from None
    except KeyboardInterrupt:
        marked = consortium.interrupt_active_runs()
        click.echo(
            f"Interrupted: {outcome.done} of {len(prompts)} prompts done; "
            f"{marked} runs marked interrupted.",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # Member threads may be stuck in a provider call: leave without them.
        os._exit(EXIT_INTERRUPTED)
    if outcome.failed:
        raise click.ClickException(
            f"{outcome.failed} of {len(prompts)} runs failed; "
            "see 'consortium-record runs --status failed'."
        )


def _prompts(prompt: str | None) -> list[str]:
    if prompt is not None:
        if not prompt.strip():
            raise click.UsageError("The prompt is empty.")
        return [valid_text(prompt)]
    if sys.stdin is None or sys.stdin.isatty():
        raise click.UsageError(
            "No prompt given: pass PROMPT, or pipe prompts on stdin, one per line."
        )
    prompts = [valid_text(line.strip()) for line in _stdin_lines() if line.strip()]
    if not prompts:
        raise click.UsageError("No prompts on stdin (every line was empty).")
    return prompts


def _stdin_lines() -> list[str]:
    """Stdin's lines; bytes that are not in its encoding become U+FFFD."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        return sys.stdin.read().split("\n")
    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    return stream.read().decode(encoding, "replace").split("\n")


def _run_one(consortium: Consortium, prompt: str, trace: bool) -> dict[str, Any]:
    with consortium_context() as context:
        if trace:
            click.echo(f"Consortium ID: {context.consortium_id}", err=True)
            click.echo(f"Trace ID: {context.trace_id}", err=True)
        return consortium.orchestrate(prompt)


def _run_prompts(
    consortium: Consortium, prompts: list[str], concurrency: int, trace: bool
) -> Iterator[dict[str, Any]]:
    """Run every prompt and yield results in the prompts' order."""
    if concurrency == 1 or len(prompts) == 1:
        with _progress(len(prompts)) as progress:
            for prompt in prompts:
                yield _run_one(consortium, prompt, trace)
                progress.update(1)
        return
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures: list[Future[dict[str, Any]]] = [
            pool.submit(run_in_context(_run_one), consortium, prompt, trace)
            for prompt in prompts
        ]
        with _progress(len(prompts)) as progress:
            for future in futures:
                yield future.result()
                progress.update(1)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def update(self, steps: int) -> None:
        pass


def _progress(length: int) -> Any:
    if length > 1 and sys.stderr.isatty():
        return click.progressbar(length=length, label="Prompts", file=sys.stderr)
    return _NoProgress()


class _BatchOutcome:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0

    def report(self, result: dict[str, Any], as_json: bool) -> None:
        self.done += 1
        if as_json:
            click.echo(json.dumps(result, ensure_ascii=False, default=str))
        if result["status"] != "completed":
            self.failed += 1
            click.echo(
                f"Run {result['consortium_id']} {result['status']}: {result['error']}",
                err=True,
            )
        elif not as_json:
            click.echo(result["synthesis"]["synthesis"])


# The analysis commands live in reports.py; they share the store's queries
# with the Datasette plugin.
register_report_commands(cli)
