"""Several recorder processes writing to one store at once lose nothing."""

from __future__ import annotations

import pathlib

import pytest
from reliability_support import (
    finish,
    integrity,
    recorder_environment,
    rows,
    scalar,
    start_recorder,
)

MEMBERS = 3


def run_parallel_recorders(
    tmp_path: pathlib.Path, processes: int, runs_per_process: int
) -> pathlib.Path:
    """Start ``processes`` recorders on one new store, each with its own prompts."""
    db_path = tmp_path / "shared.db"
    environment = recorder_environment(tmp_path)
    recorders = [
        start_recorder(
            [
                "run",
                "-m",
                f"scripted-member:{MEMBERS}",
                "--arbiter",
                "scripted-arbiter",
                "--concurrency",
                "2",
                "--db",
                str(db_path),
            ],
            environment,
            prompts=[f"process {p} prompt {r}" for r in range(runs_per_process)],
        )
        for p in range(processes)
    ]
    outcomes = [finish(recorder, timeout=300) for recorder in recorders]
    for exit_code, stderr in outcomes:
        assert "locked" not in stderr.lower()
        assert "Traceback" not in stderr
        assert exit_code == 0, stderr
    return db_path


def assert_nothing_lost(
    db_path: pathlib.Path, processes: int, runs_per_process: int
) -> None:
    runs = processes * runs_per_process
    assert integrity(db_path) == "ok"
    prompts = {row["prompt"] for row in rows(db_path, "select prompt from runs")}
    assert prompts == {
        f"process {p} prompt {r}"
        for p in range(processes)
        for r in range(runs_per_process)
    }
    assert scalar(db_path, "select count(*) from runs where status = 'completed'") == (
        runs
    )
    # Each run: every member once plus the arbiter, all in one iteration.
    assert scalar(db_path, "select count(*) from model_calls") == runs * (MEMBERS + 1)
    assert scalar(db_path, "select count(*) from evaluations") == runs
    assert scalar(db_path, "select count(*) from model_performance") == runs * MEMBERS
    orphans = scalar(
        db_path,
        "select count(*) from model_calls where consortium_id not in "
        "(select consortium_id from runs)",
    )
    assert orphans == 0
    assert scalar(db_path, "select count(*) from _migrations") == scalar(
        db_path, "select count(distinct name) from _migrations"
    )


def test_parallel_recorders_lose_nothing(tmp_path):
    db_path = run_parallel_recorders(tmp_path, processes=4, runs_per_process=8)
    assert_nothing_lost(db_path, processes=4, runs_per_process=8)


@pytest.mark.slow
def test_eight_recorders_of_twenty_five_runs_lose_nothing(tmp_path):
    db_path = run_parallel_recorders(tmp_path, processes=8, runs_per_process=25)
    assert_nothing_lost(db_path, processes=8, runs_per_process=25)
