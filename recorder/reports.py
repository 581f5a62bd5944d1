"""The analysis commands: leaderboard, runs, run-info and export-training.

Each command answers from the store with the SQL in ``recorder.queries``, the
same statements the Datasette plugin runs. Tables and trees go to stdout;
counts and notes go to stderr; ``--json`` prints what a script wants instead.
Text a model or a user wrote is escaped before it reaches a terminal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import sqlite3
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import click

from . import queries
from .evaluation_store import (
    EXPORT_BATCH_ROWS,
    RUN_STATUSES,
    EvaluationStore,
    StoreError,
    default_db_path,
)

# Options shared by the commands ----------------------------------------------

db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    envvar="LLM_CONSORTIUM_DB",
    help="The evaluations database [default: $LLM_CONSORTIUM_DB or "
    "~/.llm_consortium/evaluations.db]",
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table"
)


def _since_callback(
    context: click.Context, parameter: click.Parameter, value: str | None
) -> str | None:
    if value is None:
        return None
    try:
        return queries.normalize_since(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def since_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--since",
        metavar="DATE",
        callback=_since_callback,
        help=f"Only {what} at or after this UTC date or time (ISO 8601: "
        "2025-11-01, 2025-11-01T12:00:00, or with Z or an offset)",
    )


@contextmanager
def open_store(db_path: str | None) -> Iterator[EvaluationStore]:
    """Open an existing store for a read command; never create one.

    Runs left ``running`` by a process that has died are marked
    ``interrupted`` first, so they do not look alive.
    """
    path = db_path or default_db_path()
    file = pathlib.Path(path).expanduser()
    # An empty file is no store either (and must not be turned into one).
    if path != ":memory:" and (not file.exists() or file.stat().st_size == 0):
        raise click.ClickException(
            f"There is no store at {path} yet: record a run with "
            "'consortium-record run', or point --db at an evaluations.db."
        )
    # Limitation: opening applies pending migrations and marks dead runs, both
    # writes, so a store the user may only read cannot be reported on.
    try:
        store = EvaluationStore(path)
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    try:
        store.mark_interrupted_runs()
        yield store
    except sqlite3.Error as error:
        raise click.ClickException(f"Cannot read {path}: {printable(error)}.") from None
    finally:
        store.close()


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


# Terminal text ---------------------------------------------------------------

# C0 and C1 controls, DEL, bidirectional overrides and line separators: any of
# them could move the cursor, recolour or reorder what the user reads.
_UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_character(match: re.Match[str]) -> str:
    character = match.group()
    if character in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: Any) -> str:
    """``text`` on one line, with control characters shown as escapes (``\\x1b``)."""
    if text is None:
        return ""
    return _UNSAFE_CHARACTERS.sub(_escape_character, str(text))


def printable_lines(text: Any) -> list[str]:
    """Like :func:`printable`, but keeping the line breaks as separate lines."""
    return [printable(line) for line in str(text or "").split("\n")]


def _character_width(character: str) -> int:
    if unicodedata.combining(character) or unicodedata.category(character) in (
        "Mn",
        "Me",
        "Cf",
    ):
        return 0
    return 2 if unicodedata.east_asian_width(character) in ("W", "F") else 1


def display_width(text: str) -> int:
    """How many terminal columns ``text`` takes (wide CJK characters take two)."""
    if text.isascii():
        return len(text)
    return sum(_character_width(character) for character in text)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, ending in ``…`` when something was cut."""
    if display_width(text) <= width:
        return text
    if width <= 0:
        return ""
    kept, used = [], 0
    for character in text:
        character_width = _character_width(character)
        if used + character_width > width - 1:
            break
        kept.append(character)
        used += character_width
    return "".join(kept) + "…"


def _pad(text: str, width: int, align: str) -> str:
    space = " " * (width - display_width(text))
    return space + text if align == ">" else text + space


# Wide enough that a piped table keeps every column.
PIPED_WIDTH = 10_000


def terminal_width() -> int:
    """Columns to fit: ``$COLUMNS``, else the terminal's width; unlimited in a pipe."""
    if not os.environ.get("COLUMNS") and not sys.stdout.isatty():
        return PIPED_WIDTH
    return max(shutil.get_terminal_size((80, 24)).columns, 40)


# Box tables ------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a box table.

    ``min_width`` makes the column shrink (its cells cut with ``…``) down to
    that width when the table is too wide; ``drop_order`` lets it be hidden,
    lowest first, when shrinking is not enough.
    """

    key: str
    header: str
    format: Callable[[Any], str] = printable
    min_width: int | None = None
    drop_order: int | None = None


# A shrinkable column keeps this many columns until every droppable column is
# gone: a readable model name matters more than a latency percentile.
COMFORTABLE_WIDTH = 24


def _fit_columns(
    columns: Sequence[Column], widths: list[int], max_width: int
) -> tuple[list[Column], list[int]]:
    columns, widths = list(columns), list(widths)

    def excess() -> int:
        return sum(widths) + 3 * len(widths) + 1 - max_width

    def shrink(floor: Callable[[Column], int]) -> None:
        for index in sorted(range(len(columns)), key=lambda i: -widths[i]):
            if excess() <= 0:
                return
            if columns[index].min_width is not None:
                spare = max(widths[index] - floor(columns[index]), 0)
                widths[index] -= min(spare, excess())

    shrink(lambda column: max(column.min_width or 0, COMFORTABLE_WIDTH))
    while excess() > 0:
        droppable = [i for i, c in enumerate(columns) if c.drop_order is not None]
        if not droppable:
            break
        index = min(droppable, key=lambda i: columns[i].drop_order or 0)
        del columns[index], widths[index]
    shrink(lambda column: column.min_width or 0)
    return columns, widths


def box_table(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
    max_width: int,
) -> tuple[list[str], list[str]]:
    """Draw ``rows`` as the spec's box table; return its lines and hidden headers."""
    cells = [[column.format(row.get(column.key)) for column in columns] for row in rows]
    widths = [
        max([display_width(column.header)] + [display_width(r[i]) for r in cells])
        for i, column in enumerate(columns)
    ]
    shown, widths = _fit_columns(columns, widths, max_width)
    hidden = [column.header for column in columns if column not in shown]
    positions = [list(columns).index(column) for column in shown]
    aligns = ["<" for _ in shown]

    def line(values: Sequence[str]) -> str:
        padded = [
            _pad(fit(value, width), width, align)
            for value, width, align in zip(values, widths, aligns)
        ]
        return "║ " + " │ ".join(padded) + " ║"

    def rule(left: str, middle: str, right: str) -> str:
        return left + middle.join("═" * (width + 2) for width in widths) + right

    inner = sum(widths) + 3 * len(widths) - 1
    heading = fit(title, inner - 2)
    space = inner - display_width(heading)
    lines = [
        "╔" + "═" * inner + "╗",
        "║" + " " * (space // 2) + heading + " " * (space - space // 2) + "║",
        "╠" + "═" * inner + "╣",
        line([column.header for column in shown]),
        rule("╠", "╪", "╣"),
    ]
    lines += [line([row[i] for i in positions]) for row in cells]
    lines.append(rule("╚", "╧", "╝"))
    return lines, hidden


def _echo_table(
    title: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]]
) -> None:
    lines, hidden = box_table(title, columns, rows, terminal_width())
    click.echo("\n".join(lines))
    if hidden:
        click.echo(
            f"Hidden to fit {terminal_width()} columns: {', '.join(hidden)} "
            "(widen the terminal, set COLUMNS, or use --json).",
            err=True,
        )


# Value formats ---------------------------------------------------------------


def _number(places: int) -> Callable[[Any], str]:
    def format_number(value: Any) -> str:
        return "-" if value is None else f"{value:,.{places}f}"

    return format_number


def _percent(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _integer(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _milliseconds(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def _duration(milliseconds: Any) -> str:
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{_milliseconds(milliseconds)} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m {seconds:02d}s"


def _timestamp(value: Any) -> str:
    """``2026-12-03T15:58:45.933+00:00`` as ``2026-12-03 15:58:45``."""
    if not value:
        return "-"
    return printable(str(value)[:19].replace("T", " "))


def _count(number: Any, noun: str) -> str:
    return f"{_integer(number)} {noun}{'' if number == 1 else 's'}"


def _tokens(input_tokens: Any, output_tokens: Any) -> str:
    if input_tokens is None and output_tokens is None:
        return "tokens not reported"
    return f"{_integer(input_tokens)} in / {_integer(output_tokens)} out"


def _model_list(models: Any) -> str:
    """The ``runs.models`` JSON (``[{"model": ..., "count": n}]``) as text."""
    if isinstance(models, str):
        try:
            models = json.loads(models)
        except ValueError:
            return printable(models)
    parts = []
    for entry in models or []:
        if isinstance(entry, dict):
            count = entry.get("count") or 1
            name = printable(entry.get("model"))
            parts.append(name if count == 1 else f"{name} ×{count}")
        else:
            parts.append(printable(entry))
    return ", ".join(parts)


# leaderboard -----------------------------------------------------------------

LEADERBOARD_TABLE = [
    Column("model", "Model", min_width=12),
    Column("evaluations", "Evaluations", _integer),
    Column("avg_confidence", "Avg Confidence", _number(3), drop_order=6),
    Column("avg_tokens", "Avg Tokens", _number(0), drop_order=5),
    Column("chosen_rate", "Chosen", _percent, drop_order=7),
    Column("avg_normalized_rank", "Avg Rank", _number(3), drop_order=3),
    Column("avg_duration_ms", "Avg ms", _milliseconds, drop_order=2),
    Column("p95_duration_ms", "p95 ms", _milliseconds, drop_order=1),
    Column("error_rate", "Errors", _percent, drop_order=4),
]


@click.command()
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Show at most this many models (0 for all)",
)
@since_option("count evaluations made")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="Only this model (repeatable)",
)
@click.option(
    "--sort",
    type=click.Choice(list(queries.LEADERBOARD_SORTS)),
    default=queries.DEFAULT_LEADERBOARD_SORT,
    show_default=True,
    help="Order models by this column, best first",
)
@json_option
@db_option
def leaderboard(
    limit: int,
    since: str | None,
    models: tuple[str, ...],
    sort: str,
    as_json: bool,
    db_path: str | None,
) -> None:
    """Compare models by how the arbiters judged their answers.

    One row per model. Each time a model instance answered in an iteration
    an arbiter judged counts once, so a model asked twice in a run counts
    twice, and a call that failed counts too (error_rate). By
    default the models the arbiters ranked first most often come first
    (chosen_rate); every answer in one evaluation shares the arbiter's
    confidence, so avg_confidence says more about the runs a model took part
    in than about the model.

    \b
    Columns (and --sort keys):
      evaluations          judged iterations answered in, one per instance
      avg_confidence       mean arbiter confidence in those evaluations
      avg_tokens           mean tokens (input + output) per answer
      chosen_rate          share of answers ranked first ("Chosen")
      avg_normalized_rank  mean rank, 0 = first .. 1 = last ("Avg Rank")
      avg_duration_ms      mean latency ("Avg ms")
      p95_duration_ms      95th percentile latency ("p95 ms")
      error_rate           share of its calls that failed ("Errors")
    """
    with open_store(db_path) as store:
        entries = store.get_leaderboard(
            limit=limit or None, since=since, models=models or None, sort=sort
        )
    if as_json:
        _echo_json(entries)
    if not entries:
        filters = _describe_filters(since=since, models=models)
        click.echo(
            f"No evaluations{filters} in the store."
            if filters
            else "No evaluations in the store yet: record a run with "
            "'consortium-record run'.",
            err=True,
        )
        return
    if as_json:
        return
    # The column the rows are sorted by is never hidden.
    columns = [
        dataclasses.replace(column, drop_order=None) if column.key == sort else column
        for column in LEADERBOARD_TABLE
    ]
    _echo_table(f"MODEL PERFORMANCE LEADERBOARD (by {sort})", columns, entries)


def _describe_filters(*, since: str | None = None, models: Sequence[str] = ()) -> str:
    parts = []
    if models:
        parts.append(" for " + ", ".join(printable(model) for model in models))
    if since:
        parts.append(f" since {since}")
    return "".join(parts)


# runs ------------------------------------------------------------------------

RUNS_TABLE = [
    Column("consortium_id", "Consortium ID"),
    Column("started_at", "Started (UTC)", lambda value: _timestamp(value)[:16]),
    Column("models", "Models", _model_list, min_width=8),
    Column("iteration_count", "Iter", _integer, drop_order=2),
    Column("final_confidence", "Conf", _number(3), drop_order=4),
    Column("status", "Status"),
    Column("total_tokens", "Tokens", _integer, drop_order=1),
    Column("duration_ms", "Duration", _duration, drop_order=3),
]


@click.command()
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Show at most this many runs (0 for all)",
)
@click.option(
    "--status",
    type=click.Choice(RUN_STATUSES),
    help="Only runs with this status",
)
@json_option
@db_option
def runs(limit: int, status: str | None, as_json: bool, db_path: str | None) -> None:
    """List the most recent consortium runs, newest first."""
    with open_store(db_path) as store:
        recent = [
            queries.decode_json_columns(row)
            for row in store.list_runs(limit=limit or None, status=status)
        ]
    if as_json:
        _echo_json(recent)
    if not recent:
        click.echo(
            f"No runs with status {status} in the store."
            if status
            else "No runs in the store yet: record one with 'consortium-record run'.",
            err=True,
        )
        return
    if not as_json:
        _echo_table("RECENT CONSORTIUM RUNS", RUNS_TABLE, recent)


# run-info --------------------------------------------------------------------


@dataclass
class Node:
    """One line of a tree and the lines under it."""

    text: str
    children: list[Node]


def render_tree(root: Node, max_width: int) -> list[str]:
    """Draw ``root`` and its children with ├── └── │ guides, each line fitted."""
    lines = [fit(root.text, max_width)]

    def walk(node: Node, prefix: str) -> None:
        for index, child in enumerate(node.children):
            last = index == len(node.children) - 1
            branch = "└── " if last else "├── "
            lines.append(fit(prefix + branch + child.text, max_width))
            walk(child, prefix + ("    " if last else "│   "))

    walk(root, "")
    return lines


def _call_node(call: dict[str, Any]) -> Node:
    if call["role"] == "member":
        who = (
            f"Member {printable(call.get('label') or '?')}: {printable(call['model'])}"
        )
        if call.get("instance") is not None:
            who += f" #{call['instance']}"
    else:
        who = f"Arbiter call: {printable(call['model'])}"
    parts = [who]
    if (call.get("attempt") or 1) > 1:
        parts.append(f"attempt {call['attempt']}")
    parts.append(_tokens(call.get("input_tokens"), call.get("output_tokens")))
    parts.append(_duration(call.get("duration_ms")))
    if call.get("error"):
        parts.append(f"{call.get('status') or 'error'}: {printable(call['error'])}")
    elif call["role"] == "member":
        parts.append(f'"{printable(call.get("response"))}"')
    return Node(" · ".join(parts), [])


def _ranking_text(ranked_models: Sequence[dict[str, Any]]) -> str:
    return ", ".join(
        f"{entry['rank']}. {printable(entry['model'])}"
        + (f" #{entry['instance']}" if entry.get("instance") is not None else "")
        + f" ({printable(entry.get('label'))}"
        + (", chosen)" if entry.get("chosen") else ")")
        for entry in ranked_models
    )


def _decision_node(evaluation: dict[str, Any]) -> Node:
    needs = evaluation.get("needs_iteration")
    heading = (
        f"Decision: confidence {_number(3)(evaluation.get('confidence'))}"
        f" · needs iteration: {'-' if needs is None else 'yes' if needs else 'no'}"
    )
    if evaluation.get("judging_method"):
        heading += f" · {printable(evaluation['judging_method'])} judging"
    children = []
    areas = evaluation.get("refinement_areas")
    if areas:
        if isinstance(areas, list):
            areas = "; ".join(printable(area) for area in areas)
        children.append(Node(f"Refinement areas: {printable(areas)}", []))
    if evaluation.get("ranked_models"):
        children.append(
            Node(f"Ranking: {_ranking_text(evaluation['ranked_models'])}", [])
        )
    for key, label in (
        ("synthesis", "Synthesis"),
        ("analysis", "Analysis"),
        ("dissent", "Dissent"),
        ("error", "Error"),
    ):
        if evaluation.get(key):
            children.append(Node(f"{label}: {printable(evaluation[key])}", []))
    return Node(heading, children)


def _in_label_order(iteration: dict[str, Any]) -> list[dict[str, Any]]:
    """Members by label (A, B, ..., Z, AA), each one's retries in order; then
    the arbiter. Members run in parallel, so their start times are no order."""

    def key(call: dict[str, Any]) -> tuple[Any, ...]:
        label = call.get("label") or ""
        return (
            call["role"] != "member",
            len(label),
            label,
            call.get("attempt") or 1,
            call.get("started_at") or "",
        )

    return sorted(iteration["model_calls"], key=key)


def run_info_tree(tree: dict[str, Any]) -> Node:
    """The record of one run (``queries.run_tree``) as a :class:`Node` tree."""
    run = tree["run"]
    details = [
        Node(f"Prompt: {printable(run.get('prompt'))}", []),
        Node(
            f"Started {_timestamp(run.get('started_at'))} UTC"
            f" · took {_duration(run.get('duration_ms'))}"
            f" · {_count(run.get('iteration_count'), 'iteration')}"
            f" · {_tokens(run.get('input_tokens'), run.get('output_tokens'))}",
            [],
        ),
        Node(
            f"Models: {_model_list(run.get('models'))}"
            f" · arbiter {printable(run.get('arbiter') or '-')}"
            f" · {printable(run.get('judging_method'))} judging",
            [],
        ),
    ]
    if run.get("error"):
        details.append(Node(f"Error: {printable(run['error'])}", []))
    for iteration in tree["iterations"]:
        children = [_call_node(call) for call in _in_label_order(iteration)]
        if iteration["evaluation"] is not None:
            children.append(_decision_node(iteration["evaluation"]))
        details.append(Node(f"Iteration {iteration['iteration_id']}", children))
    heading = (
        f"Run {printable(run['consortium_id'])} · {printable(run.get('status'))}"
        f" · final confidence {_number(3)(run.get('final_confidence'))}"
    )
    return Node(heading, details)


@click.command(name="run-info")
@click.argument("consortium_id")
@json_option
@db_option
def run_info(consortium_id: str, as_json: bool, db_path: str | None) -> None:
    """Show the whole trace of one run: iterations, calls and decisions.

    CONSORTIUM_ID may be the start of an ID, as long as only one run has it.
    """
    with open_store(db_path) as store:
        matches = store.find_run_ids(consortium_id)
        if not matches:
            raise click.ClickException(
                f"No run has the ID {printable(consortium_id)!r}; "
                "'consortium-record runs' lists recent ones."
            )
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
            raise click.ClickException(
                f"{printable(consortium_id)!r} starts more than one run ID "
                f"({shown}); give more of the ID."
            )
        tree = store.get_run(matches[0])
    if tree is None:
        raise click.ClickException(f"The run {matches[0]} has just been deleted.")
    if as_json:
        _echo_json(tree)
        return
    click.echo("\n".join(render_tree(run_info_tree(tree), terminal_width())))
    synthesis = tree["run"].get("synthesis")
    if synthesis:
        click.echo("\nFinal synthesis:")
        click.echo("\n".join(printable_lines(synthesis)))


# export-training -------------------------------------------------------------


class _TextAsBytes:
    """A text stream with no byte buffer, written to as if it had one."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        return self.stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def _output_file(output: str) -> Iterator[IO[bytes]]:
    """Open OUTPUT for writing; a regular file appears only once it is complete."""
    if output == "-":
        yield getattr(sys.stdout, "buffer", None) or _TextAsBytes(sys.stdout)
        return
    path = pathlib.Path(output)
    if path.exists() and not path.is_file():
        # A pipe or device such as /dev/stdout: write to it directly.
        with open(path, "wb") as stream:
            yield stream
        return
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
        )
    except OSError as error:
        raise click.ClickException(
            f"Cannot write {output}: {error.strerror or error}."
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
        os.chmod(temporary, _new_file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _new_file_mode(path: pathlib.Path) -> int:
    """The mode ``path`` has, or the one a new file would get from the umask."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@click.command(name="export-training")
@click.argument("output", type=click.Path(dir_okay=False, allow_dash=True))
@since_option("export runs started")
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    help="Only runs whose final confidence is at least this (0 to 1)",
)
@db_option
def export_training(
    output: str, since: str | None, min_confidence: float | None, db_path: str | None
) -> None:
    """Write one JSON line per completed run to OUTPUT ('-' for stdout).

    Each line holds the prompt, the arbiter's final synthesis (chosen), its
    analysis, the models it evaluated and its confidence. Rows are streamed,
    so a large store is exported in constant memory.
    """
    written = 0
    with open_store(db_path) as store, _output_file(output) as stream:
        # Lines are written a batch at a time: one write per line costs more
        # than making the line.
        batch: list[str] = []
        for line in store.iter_training_lines(
            since=since, min_confidence=min_confidence
        ):
            batch.append(line)
            if len(batch) == EXPORT_BATCH_ROWS:
                stream.write(_jsonl(batch))
                written += len(batch)
                batch = []
        stream.write(_jsonl(batch))
        written += len(batch)
        stream.flush()
    target = "stdout" if output == "-" else output
    if written:
        noun = "example" if written == 1 else "examples"
        click.echo(f"Wrote {written} training {noun} to {target}.", err=True)
    else:
        filters = _describe_filters(since=since)
        if min_confidence is not None:
            filters += f" with confidence of at least {min_confidence}"
        click.echo(
            f"Wrote 0 training examples to {target}: no completed runs{filters} "
            "in the store.",
            err=True,
        )


def _jsonl(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def register_report_commands(group: click.Group) -> None:
    """Add the analysis commands to ``group``."""
    for command in (leaderboard, runs, run_info, export_training):
        group.add_command(command)
