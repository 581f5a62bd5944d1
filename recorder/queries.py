"""The schema and every question asked of the store, as named SQL.

The CLI (``consortium-record leaderboard`` and friends) and the Datasette
plugin both run these statements, so each question has exactly one
definition. Optional parameters treat ``NULL`` and ``''`` alike as "no filter",
which is what a blank field in a Datasette form sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

TABLES = ("runs", "model_calls", "evaluations", "model_performance")

RUNS_COLUMNS: dict[str, type] = {
    "consortium_id": str,
    "trace_id": str,
    "prompt": str,
    "system": str,
    "models": str,
    "arbiter": str,
    "judging_method": str,
    "confidence_threshold": float,
    "min_iterations": int,
    "max_iterations": int,
    "status": str,
    "iteration_count": int,
    "final_confidence": float,
    "synthesis": str,
    "error": str,
    "started_at": str,
    "finished_at": str,
    "duration_ms": float,
    "input_tokens": int,
    "output_tokens": int,
    "process_id": int,
    "hostname": str,
}

MODEL_CALLS_COLUMNS: dict[str, type] = {
    "request_id": str,
    "consortium_id": str,
    "iteration_id": int,
    "role": str,
    "model": str,
    "instance": int,
    "label": str,
    "attempt": int,
    "prompt": str,
    "system": str,
    "response": str,
    "input_tokens": int,
    "output_tokens": int,
    "duration_ms": float,
    "started_at": str,
    "finished_at": str,
    "status": str,
    "error": str,
}

EVALUATIONS_COLUMNS: dict[str, type] = {
    "id": int,
    "consortium_id": str,
    "request_id": str,
    "iteration_id": int,
    "timestamp": str,
    "prompt_text": str,
    "arbiter_model": str,
    "judging_method": str,
    "evaluated_models": str,
    "decision_json": str,
    "confidence": float,
    "synthesis": str,
    "analysis": str,
    "dissent": str,
    "needs_iteration": int,
    "refinement_areas": str,
    "ranking": str,
    "raw_response": str,
    "token_usage_json": str,
    "input_tokens": int,
    "output_tokens": int,
    "duration_ms": float,
    "error": str,
}

MODEL_PERFORMANCE_COLUMNS: dict[str, type] = {
    "id": int,
    "evaluation_id": int,
    "consortium_id": str,
    "iteration_id": int,
    "request_id": str,
    "model": str,
    "instance": int,
    "label": str,
    "confidence": float,
    "token_usage": int,
    "input_tokens": int,
    "output_tokens": int,
    "duration_ms": float,
    "rank": int,
    "normalized_rank": float,
    "chosen": int,
    "error": str,
    "timestamp": str,
    "duration_bucket_ms": float,
}

INDEXES: list[tuple[str, list[str]]] = [
    ("runs", ["started_at", "status"]),
    ("runs", ["status", "started_at", "consortium_id"]),
    ("model_calls", ["consortium_id"]),
    ("model_calls", ["started_at"]),
    ("evaluations", ["consortium_id"]),
    ("evaluations", ["timestamp"]),
    ("evaluations", ["confidence"]),
    ("model_performance", ["consortium_id"]),
    ("model_performance", ["timestamp"]),
    ("model_performance", ["confidence"]),
]


@lru_cache(maxsize=64)
def insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """``insert into table (...) values (?, ...)`` for these columns (cached)."""
    column_list = ", ".join(f"[{column}]" for column in columns)
    placeholders = ", ".join("?" for _ in columns)
    return f"insert into [{table}] ({column_list}) values ({placeholders})"


# Time filters -----------------------------------------------------------------


def normalize_since(text: str) -> str:
    """``text`` (an ISO 8601 date or date and time) in the stored timestamp form.

    Stored timestamps look like ``2025-11-01T12:00:00.000+00:00`` and are
    compared as text, so every ``since`` must be turned into that exact form
    first: a date means its midnight, a time without an offset is UTC, and a
    trailing ``Z`` or offset is converted to UTC. Raises ``ValueError`` with a
    sentence for anything else.
    """
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
        # Stored times have milliseconds: round a finer time up, so that
        # nothing earlier than it can compare as later.
        if moment.microsecond % 1000:
            moment += timedelta(microseconds=1000 - moment.microsecond % 1000)
    except (ValueError, OverflowError):
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or date and time; use a form "
            "such as 2025-11-01, 2025-11-01T12:00:00 or 2025-11-01T12:00:00Z."
        ) from None
    return moment.isoformat(timespec="milliseconds")


# Leaderboard ----------------------------------------------------------------

LEADERBOARD_COLUMNS = {
    "model": "The model's name as the user gave it",
    "evaluations": "Judged iterations it answered in, one per instance "
    "(failed calls included: error_rate counts those)",
    "avg_confidence": "Mean arbiter confidence in the evaluations it took part in",
    "avg_tokens": "Mean tokens (input + output) per answer, where reported",
    "chosen_rate": "Share of its answers the arbiter ranked first",
    "avg_normalized_rank": "Mean rank scaled to 0 (first) .. 1 (last)",
    "avg_duration_ms": "Mean latency of its answers, in milliseconds",
    "p95_duration_ms": "95th percentile latency, in milliseconds",
    "error_rate": "Share of its calls that failed",
}

LEADERBOARD_SORTS = {
    "chosen_rate": "chosen_rate desc, avg_confidence desc",
    "avg_confidence": "avg_confidence desc, chosen_rate desc",
    "avg_normalized_rank": "avg_normalized_rank asc, avg_confidence desc",
    "evaluations": "evaluations desc",
    "avg_tokens": "avg_tokens asc",
    "avg_duration_ms": "avg_duration_ms asc",
    "p95_duration_ms": "p95_duration_ms asc",
    "error_rate": "error_rate asc, chosen_rate desc",
    "model": "summary.model asc",
}
DEFAULT_LEADERBOARD_SORT = "chosen_rate"

# The leaderboard reads whole days from the rollup tables that triggers keep
# (see recorder/rollups.py) and only the first, partial day after :since from
# model_performance itself, so it costs the same at any size of store.
_LEADERBOARD_TEMPLATE = """
with period as (
  select nullif(:since, '') as since, date(nullif(:since, ''), '+1 day') as full_days
),
daily as (
  select
    stats.model, evaluations, errors, confidence_sum, confidence_count,
    token_usage_sum, token_usage_count, chosen_sum, chosen_count,
    normalized_rank_sum, normalized_rank_count, duration_ms_sum, duration_ms_count
  from model_daily_stats as stats, period
  where (period.since is null or stats.day >= period.full_days)
    and {model_filter_stats}
  union all
  select
    performance.model, count(*), total(error is not null),
    total(confidence), count(confidence), total(token_usage), count(token_usage),
    total(case when error is null then chosen end),
    count(case when error is null then chosen end),
    total(normalized_rank), count(normalized_rank),
    total(duration_ms), count(duration_ms)
  from model_performance as performance, period
  where period.since is not null
    and performance.timestamp >= period.since
    and performance.timestamp < period.full_days
    and {model_filter_performance}
  group by performance.model
),
summary as (
  select
    model,
    sum(evaluations) as evaluations,
    round(sum(confidence_sum) / nullif(sum(confidence_count), 0), 3)
      as avg_confidence,
    round(sum(token_usage_sum) * 1.0 / nullif(sum(token_usage_count), 0), 1)
      as avg_tokens,
    round(sum(chosen_sum) * 1.0 / nullif(sum(chosen_count), 0), 3) as chosen_rate,
    round(sum(normalized_rank_sum) / nullif(sum(normalized_rank_count), 0), 3)
      as avg_normalized_rank,
    round(sum(duration_ms_sum) / nullif(sum(duration_ms_count), 0), 1)
      as avg_duration_ms,
    round(sum(errors) * 1.0 / nullif(sum(evaluations), 0), 3) as error_rate
  from daily
  group by model
  having sum(evaluations) > 0
),
latency as (
  select model, duration_bucket_ms, sum(calls) as calls
  from (
    select latency.model, duration_bucket_ms, sum(calls) as calls
    from model_daily_latency as latency, period
    where (period.since is null or latency.day >= period.full_days)
      and {model_filter_latency}
    group by latency.model, duration_bucket_ms
    union all
    select performance.model, duration_bucket_ms, count(*)
    from model_performance as performance, period
    where period.since is not null
      and performance.timestamp >= period.since
      and performance.timestamp < period.full_days
      and duration_bucket_ms is not null
      and {model_filter_performance}
    group by performance.model, duration_bucket_ms
  )
  group by model, duration_bucket_ms
),
cumulative as (
  select
    model, duration_bucket_ms, calls,
    sum(calls) over (
      partition by model order by duration_bucket_ms rows unbounded preceding
    ) as running,
    sum(calls) over (partition by model) as total
  from latency
),
p95_bucket as (
  -- The one bucket where the running count crosses 95%: it holds the
  -- nearest-rank 95th percentile; "below" counts the answers under it.
  select model, duration_bucket_ms, running - calls as below, total
  from cumulative
  where total > 0 and running >= 0.95 * total and running - calls < 0.95 * total
),
in_p95_bucket as (
  -- Only that bucket's answers are read and sorted to find the exact value.
  select
    performance.model, performance.duration_ms,
    p95_bucket.below + row_number() over (
      partition by performance.model order by performance.duration_ms
    ) as position,
    p95_bucket.total
  from p95_bucket
  join model_performance as performance
    on performance.model = p95_bucket.model
    and performance.duration_bucket_ms = p95_bucket.duration_bucket_ms,
    period
  where period.since is null or performance.timestamp >= period.since
),
p95_latency as (
  select model, round(min(duration_ms), 1) as p95_duration_ms
  from in_p95_bucket
  where position >= 0.95 * total
  group by model
)
select
  summary.model, evaluations, avg_confidence, avg_tokens, chosen_rate,
  avg_normalized_rank, avg_duration_ms, p95_duration_ms, error_rate
from summary left join p95_latency on p95_latency.model = summary.model
order by {order_by}, summary.model
{limit}
"""


def _model_filter(alias: str) -> str:
    return (
        f"(nullif(:models, '') is null "
        f"or {alias}.model in (select value from json_each(:models)))"
    )


def leaderboard_sql(sort: str = DEFAULT_LEADERBOARD_SORT, limit: bool = True) -> str:
    """The leaderboard query, ordered by one of :data:`LEADERBOARD_SORTS`.

    Parameters: ``:since`` (ISO timestamp), ``:models`` (a JSON array of
    names) and, when ``limit`` is true, ``:limit``.
    """
    if sort not in LEADERBOARD_SORTS:
        raise ValueError(
            f"Cannot sort by {sort!r}; choose one of {', '.join(LEADERBOARD_SORTS)}."
        )
    return _LEADERBOARD_TEMPLATE.format(
        model_filter_stats=_model_filter("stats"),
        model_filter_latency=_model_filter("latency"),
        model_filter_performance=_model_filter("performance"),
        order_by=LEADERBOARD_SORTS[sort],
        limit="limit coalesce(nullif(:limit, ''), -1)" if limit else "",
    ).strip()


# Runs -------------------------------------------------------------------------

RECENT_RUNS_SQL = """
select
  consortium_id, started_at, models, arbiter, judging_method, iteration_count,
  final_confidence, status, input_tokens, output_tokens,
  coalesce(input_tokens, 0) + coalesce(output_tokens, 0) as total_tokens,
  duration_ms, substr(prompt, 1, 200) as prompt, error
from runs
where (nullif(:status, '') is null or status = :status)
order by started_at desc, consortium_id desc
limit coalesce(nullif(:limit, ''), 50)
""".strip()

RUN_IDS_BY_PREFIX_SQL = """
select consortium_id from runs
where consortium_id >= :prefix and consortium_id < :prefix || char(1114111)
order by consortium_id
limit 10
""".strip()

RUN_SQL = "select * from runs where consortium_id = :consortium_id"

RUN_MODEL_CALLS_SQL = """
select * from model_calls where consortium_id = :consortium_id
order by iteration_id, started_at, role desc, instance
""".strip()

RUN_EVALUATIONS_SQL = """
select * from evaluations where consortium_id = :consortium_id
order by iteration_id, id
""".strip()

RUN_PERFORMANCE_SQL = """
select * from model_performance where consortium_id = :consortium_id
order by iteration_id, rank is null, rank, id
""".strip()

_JSON_COLUMNS = {
    "models",
    "evaluated_models",
    "decision_json",
    "refinement_areas",
    "ranking",
    "token_usage_json",
}


def decode_json_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with its JSON text columns decoded (bad JSON kept as text)."""
    decoded = dict(row)
    for column in _JSON_COLUMNS & decoded.keys():
        value = decoded[column]
        if isinstance(value, str):
            try:
                decoded[column] = json.loads(value)
            except ValueError:
                pass
    return decoded


def run_tree(
    query: Callable[[str, dict[str, Any]], list[dict[str, Any]]], consortium_id: str
) -> dict[str, Any] | None:
    """The record of one run as ``{"run": ..., "iterations": [...]}``.

    ``query(sql, parameters)`` must return rows as dicts; the CLI passes the
    store's, the Datasette plugin its database's. Each iteration holds its
    ``model_calls`` (members, then arbiter) and its ``evaluation``, whose
    ``ranking`` is mapped back to models as ``ranked_models``.
    """
    parameters = {"consortium_id": consortium_id}
    runs = query(RUN_SQL, parameters)
    if not runs:
        return None
    run = decode_json_columns(runs[0])
    calls = [decode_json_columns(row) for row in query(RUN_MODEL_CALLS_SQL, parameters)]
    evaluations = [
        decode_json_columns(row) for row in query(RUN_EVALUATIONS_SQL, parameters)
    ]
    performance = query(RUN_PERFORMANCE_SQL, parameters)

    iteration_ids = sorted(
        {row["iteration_id"] for row in calls + evaluations if row["iteration_id"]}
    )
    iterations = []
    for iteration_id in iteration_ids:
        evaluation = next(
            (e for e in reversed(evaluations) if e["iteration_id"] == iteration_id),
            None,
        )
        if evaluation is not None:
            evaluation["ranked_models"] = [
                {
                    "rank": row["rank"],
                    "label": row["label"],
                    "model": row["model"],
                    "instance": row["instance"],
                    "chosen": bool(row["chosen"]),
                }
                for row in performance
                if row["evaluation_id"] == evaluation["id"] and row["rank"] is not None
            ]
        iterations.append(
            {
                "iteration_id": iteration_id,
                "model_calls": [c for c in calls if c["iteration_id"] == iteration_id],
                "evaluation": evaluation,
            }
        )
    return {"run": run, "iterations": iterations}


# Training export ----------------------------------------------------------------

TRAINING_EXPORT_SQL = """
select
  runs.prompt as prompt,
  runs.synthesis as chosen,
  evaluations.analysis as analysis,
  evaluations.evaluated_models as models_evaluated,
  runs.final_confidence as arbiter_confidence
from runs
join evaluations on evaluations.id = (
  select id from evaluations as final
  where final.consortium_id = runs.consortium_id and final.error is null
  order by final.iteration_id desc, final.id desc
  limit 1
)
where runs.status = 'completed'
  and runs.synthesis is not null
  and (nullif(:since, '') is null or runs.started_at >= :since)
  and (nullif(:min_confidence, '') is null
       or runs.final_confidence >= cast(:min_confidence as real))
order by runs.started_at, runs.consortium_id
""".strip()

TRAINING_EXAMPLE_KEYS = (
    "prompt",
    "chosen",
    "analysis",
    "models_evaluated",
    "arbiter_confidence",
)


def training_example(row: dict[str, Any]) -> dict[str, Any]:
    """One row of ``TRAINING_EXPORT_SQL`` as the spec's training example."""
    return _training_example(
        row.get("prompt"),
        row.get("chosen"),
        row.get("analysis"),
        row.get("models_evaluated"),
        row.get("arbiter_confidence"),
    )


def _training_example(
    prompt: Any, chosen: Any, analysis: Any, models: Any, confidence: Any
) -> dict[str, Any]:
    if isinstance(models, str):
        try:
            models = json.loads(models)
        except ValueError:
            models = [models]
    return {
        "prompt": prompt,
        "chosen": chosen,
        "analysis": analysis,
        "models_evaluated": models or [],
        "arbiter_confidence": confidence,
    }


# json.dumps builds a new encoder on every call when given options; an export
# writes hundreds of thousands of lines, so one encoder is made once.
_TRAINING_LINE_ENCODER = json.JSONEncoder(ensure_ascii=False)


def training_line(row: dict[str, Any]) -> str:
    """One JSONL line (without the newline) for a ``TRAINING_EXPORT_SQL`` row."""
    return _TRAINING_LINE_ENCODER.encode(training_example(row))


def training_line_from_values(values: tuple[Any, ...]) -> str:
    """:func:`training_line` for a row given as a tuple in the query's order."""
    return _TRAINING_LINE_ENCODER.encode(_training_example(*values))


# Other canned questions --------------------------------------------------------

TOKEN_USAGE_BY_MODEL_SQL = """
select
  model,
  count(*) as calls,
  sum(input_tokens) as input_tokens,
  sum(output_tokens) as output_tokens,
  coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) as total_tokens,
  sum(error is not null) as errors,
  round(avg(duration_ms), 1) as avg_duration_ms
from model_calls
group by model
order by total_tokens desc, model
""".strip()

FAILED_EVALUATIONS_SQL = """
select consortium_id, iteration_id, timestamp, arbiter_model, error,
  substr(raw_response, 1, 500) as raw_response
from evaluations
where error is not null
order by timestamp desc
limit 100
""".strip()
