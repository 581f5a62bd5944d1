"""The daily rollups behind the leaderboard agree with the raw rows, always."""

import math
import random
import sqlite3

import pytest

from recorder.evaluation_store import EvaluationStore
from recorder.rollups import TRIGGERS, duration_bucket

MODELS = ["alpha", "beta", "gamma:7b"]


def fill_store(path, seed=7, evaluations=120):
    generator = random.Random(seed)
    store = EvaluationStore(path)
    with store.batch():
        for number in range(evaluations):
            day = 1 + number % 9
            hour = generator.randrange(24)
            members = []
            for model in generator.sample(MODELS, generator.randint(1, 3)):
                failed = generator.random() < 0.1
                members.append(
                    {
                        "model": model,
                        "rank": None if failed else len(members) + 1,
                        "error": "boom" if failed else None,
                        "input_tokens": generator.choice([None, 10, 25]),
                        "output_tokens": generator.choice([None, 5, 40]),
                        "duration_ms": generator.choice(
                            [None, 0.0, generator.uniform(1, 9000)]
                        ),
                    }
                )
            broken = generator.random() < 0.1
            store.store_evaluation(
                consortium_id=f"cons-{number:016x}",
                iteration_id=1,
                prompt_text="question",
                arbiter_model="judge",
                evaluated_models=members,
                decision=None if broken else {"confidence": generator.random()},
                error="unparseable" if broken else None,
                timestamp=f"2026-03-{day:02d}T{hour:02d}:30:00.000+00:00",
            )
    return store


def brute_force_leaderboard(path, since=None):
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = [
        dict(row)
        for row in conn.execute("select * from model_performance order by id")
        if since is None or row["timestamp"] >= since
    ]
    board = {}
    for model in sorted({row["model"] for row in rows}):
        mine = [row for row in rows if row["model"] == model]

        def mean(values, places):
            values = [value for value in values if value is not None]
            return round(sum(values) / len(values), places) if values else None

        durations = sorted(
            r["duration_ms"] for r in mine if r["duration_ms"] is not None
        )
        p95 = None
        if durations:
            p95 = round(durations[math.ceil(0.95 * len(durations)) - 1], 1)
        board[model] = {
            "model": model,
            "evaluations": len(mine),
            "avg_confidence": mean([r["confidence"] for r in mine], 3),
            "avg_tokens": mean([r["token_usage"] for r in mine], 1),
            "chosen_rate": mean([r["chosen"] for r in mine if r["error"] is None], 3),
            "avg_normalized_rank": mean([r["normalized_rank"] for r in mine], 3),
            "avg_duration_ms": mean([r["duration_ms"] for r in mine], 1),
            "p95_duration_ms": p95,
            "error_rate": round(
                sum(r["error"] is not None for r in mine) / len(mine), 3
            ),
        }
    return board


def leaderboard_by_model(store, since=None):
    return {row["model"]: row for row in store.get_leaderboard(limit=None, since=since)}


def assert_boards_match(actual, expected):
    assert actual.keys() == expected.keys()
    for model, row in expected.items():
        for key, value in row.items():
            if isinstance(value, float):
                assert actual[model][key] == pytest.approx(value, abs=1e-9), key
            else:
                assert actual[model][key] == value, key


@pytest.mark.parametrize(
    "since",
    [
        None,
        "2026-03-04",
        "2026-03-04T12:00:00+00:00",
        "2026-03-09T23:59:59+00:00",
        "2026-04-01",
    ],
)
def test_leaderboard_equals_brute_force(db_path, since):
    store = fill_store(db_path)
    assert_boards_match(
        leaderboard_by_model(store, since), brute_force_leaderboard(db_path, since)
    )


def test_rollups_follow_deletes_and_updates(db_path):
    store = fill_store(db_path)
    with store.batch():
        store.conn.execute("delete from model_performance where id % 3 = 0")
        store.conn.execute(
            "update model_performance set duration_ms = 42.0, duration_bucket_ms = ?, "
            "model = 'alpha' where id % 5 = 0",
            [duration_bucket(42.0)],
        )
    assert_boards_match(leaderboard_by_model(store), brute_force_leaderboard(db_path))
    assert_boards_match(
        leaderboard_by_model(store, "2026-03-05T06:00:00+00:00"),
        brute_force_leaderboard(db_path, "2026-03-05T06:00:00+00:00"),
    )


def test_migration_backfills_rollups_from_existing_rows(db_path):
    store = fill_store(db_path)
    before = leaderboard_by_model(store)
    with store.batch():
        for trigger in TRIGGERS:
            store.conn.execute(f"drop trigger {trigger}")
        for table in ("model_daily_stats", "model_daily_latency"):
            store.conn.execute(f"drop table {table}")
        store.conn.execute("update model_performance set duration_bucket_ms = null")
        store.conn.execute(
            "delete from _migrations where name = 'm003_create_daily_rollups'"
        )
    store.close()
    reopened = EvaluationStore(db_path)
    assert leaderboard_by_model(reopened) == before


@pytest.mark.parametrize(
    "duration,bucket",
    [(None, None), (0, 0.0), (-3, 0.0), (1.0, 1.0219), (200.0, 201.7255)],
)
def test_duration_bucket(duration, bucket):
    assert duration_bucket(duration) == bucket


def test_bucket_is_within_a_sixteenth_of_a_doubling():
    for duration in (0.01, 0.5, 3.0, 99.9, 1234.5, 10**6):
        assert abs(duration_bucket(duration) / duration - 1) < 0.0443


def test_the_python_api_reads_since_as_the_cli_does(db_path):
    store = fill_store(db_path)
    expected = brute_force_leaderboard(db_path, "2026-03-04T12:00:00.000+00:00")
    for since in ("2026-03-04T14:00:00+02:00", "2026-03-04T12:00:00Z"):
        assert_boards_match(leaderboard_by_model(store, since), expected)
    with pytest.raises(ValueError):
        store.get_leaderboard(since="yesterday")
    assert len(store.get_leaderboard(limit=0)) == len(MODELS)
