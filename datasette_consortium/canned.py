"""The canned queries the plugin adds, and the checks on their parameters.

Every query's SQL comes from ``recorder.queries``, the module the CLI runs
too, so a question asked in Datasette and on the command line gets the same
answer. Only the titles, descriptions and parameter checks live here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from recorder import queries
from recorder.evaluation_store import RUN_STATUSES


@dataclass(frozen=True)
class CannedQuery:
    name: str
    title: str
    description: str
    sql: str
    parameters: tuple[str, ...] = ()


def _leaderboard_description() -> str:
    columns = "; ".join(
        f"{column}: {meaning}"
        for column, meaning in queries.LEADERBOARD_COLUMNS.items()
    )
    return (
        "One row per model that answered in a consortium, best first (by the "
        "share of its answers the arbiter ranked first). Leave since blank for "
        "all time, or give an ISO 8601 date such as 2025-11-01. Leave models "
        'blank for every model, or give a JSON list such as ["gpt-4o", "k2"]. '
        f"Columns: {columns}."
    )


CANNED_QUERIES: dict[str, CannedQuery] = {
    query.name: query
    for query in (
        CannedQuery(
            name="leaderboard",
            title="Model leaderboard",
            description=_leaderboard_description(),
            sql=queries.leaderboard_sql(limit=False),
            parameters=("since", "models"),
        ),
        CannedQuery(
            name="recent_runs",
            title="Recent consortium runs",
            description=(
                "The latest runs first: when each started, which models and "
                "arbiter took part, how many iterations it took, the final "
                "confidence, tokens and duration. Filter by status (running, "
                "completed, failed or interrupted); limit defaults to 50. Open a "
                "consortium_id for the run's full record and timeline."
            ),
            sql=queries.RECENT_RUNS_SQL,
            parameters=("status", "limit"),
        ),
        CannedQuery(
            name="token_usage_by_model",
            title="Token usage by model",
            description=(
                "Every model call (members and arbiters) grouped by model: "
                "calls, input, output and total tokens, failed calls and mean "
                "latency in milliseconds. Most tokens first."
            ),
            sql=queries.TOKEN_USAGE_BY_MODEL_SQL,
        ),
        CannedQuery(
            name="failed_evaluations",
            title="Failed evaluations",
            description=(
                "The latest 100 arbiter decisions that could not be used, with "
                "the error and the start of the arbiter's raw reply."
            ),
            sql=queries.FAILED_EVALUATIONS_SQL,
        ),
        CannedQuery(
            name="training_export",
            title="Training export",
            description=(
                "One fine-tuning example per completed run, oldest first: the "
                "prompt, the arbiter's final synthesis (chosen), its analysis, "
                "the models it evaluated and its confidence. Leave since and "
                "min_confidence blank for no filter. Add .jsonl to the URL for "
                "every example as JSON lines, exactly as consortium-record "
                "export-training writes them."
            ),
            sql=queries.TRAINING_EXPORT_SQL,
            parameters=("since", "min_confidence"),
        ),
    )
}


class InvalidParameter(ValueError):
    """A canned query parameter that cannot be used; the message is a sentence."""


def _shown(value: str) -> str:
    """``value`` quoted for a message, cut short if it is long."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _check_since(value: str) -> str:
    # The CLI's own normalization, so both compare with the same timestamp.
    try:
        return queries.normalize_since(value)
    except ValueError:
        raise InvalidParameter(
            f"since must be an ISO 8601 date or time such as 2025-11-01, "
            f"2025-11-01T09:30:00 or 2025-11-01T09:30:00Z, not {_shown(value)}."
        ) from None


def _check_min_confidence(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number <= 1:
        raise InvalidParameter(
            "min_confidence must be a number from 0 to 1 such as 0.8, "
            f"not {_shown(value)}."
        )
    return value


def _check_models(value: str) -> str:
    try:
        models = json.loads(value)
    except (ValueError, RecursionError):
        models = None
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidParameter(
            'models must be a JSON list of model names such as ["gpt-4o", "k2"], '
            f"not {_shown(value)}."
        )
    return value


def _check_status(value: str) -> str:
    if value not in RUN_STATUSES:
        raise InvalidParameter(
            f"status must be one of {', '.join(RUN_STATUSES)}, not {_shown(value)}."
        )
    return value


LARGEST_LIMIT = 2**63 - 1  # SQLite's largest integer


def _check_limit(value: str) -> str:
    if not re.fullmatch(r"[0-9]{1,19}", value) or not 1 <= int(value) <= LARGEST_LIMIT:
        raise InvalidParameter(
            f"limit must be a whole number of rows from 1 to {LARGEST_LIMIT}, "
            f"not {_shown(value)}."
        )
    return value


PARAMETER_CHECKS: dict[str, Callable[[str], str]] = {
    "since": _check_since,
    "min_confidence": _check_min_confidence,
    "models": _check_models,
    "status": _check_status,
    "limit": _check_limit,
}


def check_parameters(query_name: str, arguments: Mapping[str, str]) -> dict[str, str]:
    """The query's non-blank parameters, checked and in the form the SQL needs.

    Blank parameters mean "no filter" and always pass. ``since`` is turned
    into the stored timestamp form, as the CLI does. Raises
    :class:`InvalidParameter` for a malformed one.
    """
    checked = {}
    for parameter in CANNED_QUERIES[query_name].parameters:
        value = arguments.get(parameter) or ""
        if value.strip():
            checked[parameter] = PARAMETER_CHECKS[parameter](value)
    return checked
