"""Stores made by older versions are brought up to date in place, data and all."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from reliability_support import (
    finish,
    integrity,
    recorder_environment,
    rows,
    scalar,
    start_recorder,
)

from recorder import evaluation_store, queries
from recorder.cli import cli
from recorder.evaluation_store import EvaluationStore

# The original llm-consortium's two tables, with only the specification's
# columns, SQLite's own timestamp format and its own index names.
ORIGINAL_SCHEMA = """
create table evaluations (
    id integer primary key autoincrement,
    consortium_id text not null,
    request_id text,
    iteration_id integer,
    timestamp datetime default current_timestamp,
    prompt_text text,
    arbiter_model text,
    evaluated_models text,
    decision_json text,
    confidence real,
    synthesis text,
    analysis text,
    dissent text,
    needs_iteration boolean,
    refinement_areas text,
    ranking text,
    token_usage_json text,
    duration_ms real,
    error text
);
create table model_performance (
    {performance_id}
    model text not null,
    consortium_id text,
    iteration_id integer,
    request_id text,
    confidence real,
    token_usage integer,
    duration_ms real,
    rank integer,
    chosen boolean,
    timestamp datetime default current_timestamp
);
create index idx_evaluations_consortium on evaluations (consortium_id);
create index idx_evaluations_confidence on evaluations (confidence);
"""


def build_original_store(path, with_performance_id: bool = True) -> None:
    conn = sqlite3.connect(path)
    performance_id = (
        "id integer primary key autoincrement," if with_performance_id else ""
    )
    conn.executescript(ORIGINAL_SCHEMA.format(performance_id=performance_id))
    for number, (confidence, error) in enumerate(
        [(0.91, None), (0.42, None), (None, "Could not parse the arbiter's reply")],
        start=1,
    ):
        consortium_id = f"cons-{number:016x}"
        conn.execute(
            "insert into evaluations (consortium_id, request_id, iteration_id, "
            "timestamp, prompt_text, arbiter_model, evaluated_models, "
            "decision_json, confidence, synthesis, needs_iteration, ranking, "
            "token_usage_json, duration_ms, error) values "
            "(?, ?, 1, ?, ?, 'k2-think', ?, ?, ?, ?, 0, ?, ?, 1200.5, ?)",
            [
                consortium_id,
                f"req-{number:012x}",
                f"2025-11-0{number} 10:00:00",
                f"Old prompt {number}",
                json.dumps(["glm-4.6", "k2"]),
                json.dumps({"confidence": confidence}),
                confidence,
                None if error else f"Old synthesis {number}",
                json.dumps(["A", "B"]),
                json.dumps({"glm-4.6": 150, "k2": 210}),
                error,
            ],
        )
        for rank, (model, tokens) in enumerate([("glm-4.6", 150), ("k2", 210)], 1):
            conn.execute(
                "insert into model_performance (model, consortium_id, "
                "iteration_id, confidence, token_usage, duration_ms, rank, chosen, "
                "timestamp) values (?, ?, 1, ?, ?, 900, ?, ?, ?)",
                [
                    model,
                    consortium_id,
                    confidence,
                    tokens,
                    rank,
                    rank == 1,
                    f"2025-11-0{number} 10:00:00",
                ],
            )
    conn.commit()
    conn.close()


def table_rows(path, table: str):
    return rows(path, f"select * from [{table}] order by rowid")


def columns(path, table: str) -> set[str]:
    return {row["name"] for row in rows(path, f"pragma table_info([{table}])")}


def indexed_columns(path, table: str) -> set[tuple[str, ...]]:
    found = set()
    for index in rows(path, f"pragma index_list([{table}])"):
        info = rows(path, f"pragma index_info([{index['name']}])")
        found.add(tuple(row["name"] for row in info))
    return found


def assert_current_schema(path) -> None:
    for table, expected in [
        ("runs", queries.RUNS_COLUMNS),
        ("model_calls", queries.MODEL_CALLS_COLUMNS),
        ("evaluations", queries.EVALUATIONS_COLUMNS),
        ("model_performance", queries.MODEL_PERFORMANCE_COLUMNS),
    ]:
        assert set(expected) <= columns(path, table), table
    for table, indexed in queries.INDEXES:
        assert tuple(indexed) in indexed_columns(path, table), (table, indexed)
    applied = [row["name"] for row in rows(path, "select name from _migrations")]
    assert applied == [name for name, _ in evaluation_store.MIGRATIONS]


@pytest.mark.parametrize("with_performance_id", [True, False])
def test_the_original_stores_tables_are_migrated_with_their_data(
    tmp_path, with_performance_id
):
    path = tmp_path / "original.db"
    build_original_store(path, with_performance_id)
    before = {
        table: table_rows(path, table) for table in ("evaluations", "model_performance")
    }

    with EvaluationStore(path) as store:
        leaderboard = {row["model"]: row for row in store.get_leaderboard()}
    assert integrity(path) == "ok"
    assert_current_schema(path)
    for table, old_rows in before.items():
        new_rows = table_rows(path, table)
        assert len(new_rows) == len(old_rows)
        for old, new in zip(old_rows, new_rows):
            assert {column: new[column] for column in old} == old
    assert set(leaderboard) == {"glm-4.6", "k2"}
    assert leaderboard["glm-4.6"]["evaluations"] == 3

    # Opening it again applies nothing more.
    with EvaluationStore(path) as store:
        assert store.migrate() == []


def test_a_migrated_original_store_takes_new_runs_and_answers_reports(tmp_path):
    path = tmp_path / "original.db"
    build_original_store(path)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["run", "-m", "scripted-member:2", "--arbiter", "scripted-arbiter"]
        + ["--db", str(path), "New prompt"],
    )
    assert result.exit_code == 0, result.output
    assert scalar(path, "select count(*) from evaluations") == 4
    assert scalar(path, "select count(*) from model_performance") == 8
    new_performance = rows(
        path, "select * from model_performance where evaluation_id is not null"
    )
    assert len(new_performance) == 2

    result = runner.invoke(cli, ["leaderboard", "--db", str(path), "--json"])
    assert result.exit_code == 0, result.output
    models = {row["model"] for row in json.loads(result.stdout)}
    assert models == {"glm-4.6", "k2", "scripted-member"}
    result = runner.invoke(cli, ["runs", "--db", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert [run["prompt"] for run in json.loads(result.stdout)] == ["New prompt"]


def test_a_store_with_only_the_first_migration_is_brought_up_to_date(
    tmp_path, monkeypatch
):
    path = tmp_path / "first-release.db"
    with monkeypatch.context() as patch:
        patch.setattr(evaluation_store, "MIGRATIONS", evaluation_store.MIGRATIONS[:1])
        result = CliRunner().invoke(
            cli,
            ["run", "-m", "scripted-member:2", "--arbiter", "scripted-arbiter"]
            + ["--db", str(path), "Recorded by the first release"],
        )
        assert result.exit_code == 0, result.output
    assert indexed_columns(path, "evaluations") == set()
    before = {table: table_rows(path, table) for table in queries.TABLES}

    with EvaluationStore(path) as store:
        assert store.migrate() == []
    assert_current_schema(path)
    assert {table: table_rows(path, table) for table in queries.TABLES} == before
    assert integrity(path) == "ok"


def test_recorders_migrating_one_old_store_at_once_agree(tmp_path):
    path = tmp_path / "original.db"
    build_original_store(path)
    environment = recorder_environment(tmp_path)
    recorders = [
        start_recorder(
            ["run", "-m", "scripted-member", "--arbiter", "scripted-arbiter"]
            + ["--db", str(path), f"Prompt from recorder {number}"],
            environment,
        )
        for number in range(4)
    ]
    for recorder in recorders:
        exit_code, stderr = finish(recorder)
        assert exit_code == 0, stderr
    assert_current_schema(path)
    assert scalar(path, "select count(*) from runs where status = 'completed'") == 4
    assert scalar(path, "select count(*) from evaluations") == 3 + 4
    assert integrity(path) == "ok"
