"""Per-model, per-day totals that keep the leaderboard fast at any store size.

Two tables are kept up to date by triggers on ``model_performance`` (so any
writer, not only this package, keeps them right):

- ``model_daily_stats``: for each model and UTC day, the counts and sums the
  leaderboard's means are made of;
- ``model_daily_latency``: for each model and UTC day, how many answers fell in
  each latency bucket, from which the leaderboard reads its 95th percentile.

Latency buckets form a logarithmic grid of 16 steps per doubling; a bucket is
named by its geometric middle, so a latency read from it is within 2.2% of the
true one. ``model_performance.duration_bucket_ms`` holds each answer's bucket,
computed in Python because SQLite builds without math functions are common.
"""

from __future__ import annotations

import math
import sqlite3

STEPS_PER_DOUBLING = 16
_LOG_STEP = math.log(2) / STEPS_PER_DOUBLING

DAILY_STATS_COLUMNS: dict[str, type] = {
    "model": str,
    "day": str,
    "evaluations": int,
    "errors": int,
    "confidence_sum": float,
    "confidence_count": int,
    "token_usage_sum": int,
    "token_usage_count": int,
    "chosen_sum": int,
    "chosen_count": int,
    "normalized_rank_sum": float,
    "normalized_rank_count": int,
    "duration_ms_sum": float,
    "duration_ms_count": int,
}

DAILY_LATENCY_COLUMNS: dict[str, type] = {
    "model": str,
    "day": str,
    "duration_bucket_ms": float,
    "calls": int,
}

# What each model_daily_stats column adds for one model_performance row.
_STATS_TERMS = {
    "evaluations": "1",
    "errors": "{row}.error is not null",
    "confidence_sum": "coalesce({row}.confidence, 0)",
    "confidence_count": "{row}.confidence is not null",
    "token_usage_sum": "coalesce({row}.token_usage, 0)",
    "token_usage_count": "{row}.token_usage is not null",
    "chosen_sum": "case when {row}.error is null then coalesce({row}.chosen, 0) "
    "else 0 end",
    "chosen_count": "{row}.error is null and {row}.chosen is not null",
    "normalized_rank_sum": "coalesce({row}.normalized_rank, 0)",
    "normalized_rank_count": "{row}.normalized_rank is not null",
    "duration_ms_sum": "coalesce({row}.duration_ms, 0)",
    "duration_ms_count": "{row}.duration_ms is not null",
}


def duration_bucket(duration_ms: float | None) -> float | None:
    """The latency bucket ``duration_ms`` falls in, named by its middle."""
    if duration_ms is None:
        return None
    if duration_ms <= 0:
        return 0.0
    step = math.floor(math.log(duration_ms) / _LOG_STEP)
    return round(math.exp((step + 0.5) * _LOG_STEP), 4)


def _column_definitions(columns: dict[str, type]) -> str:
    sql_types = {str: "TEXT", int: "INTEGER", float: "REAL"}
    return ", ".join(f"[{name}] {sql_types[kind]}" for name, kind in columns.items())


def _apply_row_sql(row: str, sign: int) -> str:
    """Statements that add (``sign`` 1) or remove (-1) one row's share."""
    columns = ", ".join(_STATS_TERMS)
    values = ", ".join(
        f"{'-' if sign < 0 else ''}({term.format(row=row)})"
        for term in _STATS_TERMS.values()
    )
    updates = ", ".join(
        f"{column} = {column} + excluded.{column}" for column in _STATS_TERMS
    )
    return f"""
  insert into model_daily_stats (model, day, {columns})
  values ({row}.model, substr({row}.timestamp, 1, 10), {values})
  on conflict (model, day) do update set {updates};
  insert into model_daily_latency (model, day, duration_bucket_ms, calls)
  select {row}.model, substr({row}.timestamp, 1, 10), {row}.duration_bucket_ms, {sign}
  where {row}.duration_bucket_ms is not null
  on conflict (model, day, duration_bucket_ms) do update
  set calls = calls + excluded.calls;"""


TRIGGERS = {
    "model_performance_rollup_insert": (
        "after insert on model_performance",
        _apply_row_sql("new", 1),
    ),
    "model_performance_rollup_delete": (
        "after delete on model_performance",
        _apply_row_sql("old", -1),
    ),
    "model_performance_rollup_update": (
        "after update on model_performance",
        _apply_row_sql("old", -1) + _apply_row_sql("new", 1),
    ),
}


def create_rollups(conn: sqlite3.Connection) -> None:
    """Create the rollup tables and triggers, filled from the rows already there.

    Runs inside the caller's transaction (a migration's).
    """
    # Clustered by model first (WITHOUT ROWID), so summing a model's days, or
    # a model's buckets across days, reads the table in order with no sort.
    conn.execute(
        f"create table if not exists model_daily_stats "
        f"({_column_definitions(DAILY_STATS_COLUMNS)}, primary key (model, day)) "
        "without rowid"
    )
    conn.execute(
        f"create table if not exists model_daily_latency "
        f"({_column_definitions(DAILY_LATENCY_COLUMNS)}, "
        "primary key (model, duration_bucket_ms, day)) without rowid"
    )
    conn.create_function("consortium_duration_bucket", 1, duration_bucket)
    conn.execute(
        "update model_performance set duration_bucket_ms = "
        "consortium_duration_bucket(duration_ms) "
        "where duration_ms is not null and duration_bucket_ms is null"
    )
    conn.execute("delete from model_daily_stats")
    conn.execute("delete from model_daily_latency")
    sums = ", ".join(
        f"total({term.format(row='model_performance')})"
        for term in _STATS_TERMS.values()
    )
    conn.execute(
        f"insert into model_daily_stats (model, day, {', '.join(_STATS_TERMS)}) "
        f"select model, substr(timestamp, 1, 10), {sums} from model_performance "
        "group by model, substr(timestamp, 1, 10)"
    )
    conn.execute(
        "insert into model_daily_latency (model, day, duration_bucket_ms, calls) "
        "select model, substr(timestamp, 1, 10), duration_bucket_ms, count(*) "
        "from model_performance where duration_bucket_ms is not null "
        "group by model, substr(timestamp, 1, 10), duration_bucket_ms"
    )
    for name, (event, body) in TRIGGERS.items():
        conn.execute(f"drop trigger if exists {name}")
        conn.execute(f"create trigger {name} {event} begin {body}\nend")
