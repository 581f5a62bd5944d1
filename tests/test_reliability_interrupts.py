"""Recorders killed or interrupted mid-run leave a sound, honest store."""

from __future__ import annotations

import json
import os
import signal

import pytest
from click.testing import CliRunner
from reliability_support import (
    finish,
    integrity,
    recorder_environment,
    rows,
    scalar,
    start_recorder,
    wait_for,
)

from recorder.cli import cli
from recorder.evaluation_store import EvaluationStore

# One member answers at once, the other takes a while: each run spends most of
# its time 'running' with one call already committed.
SCRIPTS = {"plodding-member": {"reply": "Slowly: {prompt}", "delay": 0.6}}
PROMPTS = [f"Question {number}" for number in range(12)]


def start_batch(tmp_path, db_path, *extra: str):
    return start_recorder(
        [
            "run",
            "-m",
            "scripted-member",
            "-m",
            "plodding-member",
            "--arbiter",
            "scripted-arbiter",
            "--db",
            str(db_path),
            *extra,
        ],
        recorder_environment(tmp_path, SCRIPTS),
        prompts=PROMPTS,
    )


def mid_run(db_path, completed: int):
    """True once ``completed`` runs are done and another has a call committed."""

    def condition() -> bool:
        done = scalar(db_path, "select count(*) from runs where status = 'completed'")
        started = scalar(
            db_path,
            "select count(*) from runs where status = 'running' and exists "
            "(select 1 from model_calls where model_calls.consortium_id = "
            "runs.consortium_id)",
        )
        return done >= completed and started >= 1

    return condition


def assert_completed_runs_are_whole(db_path) -> None:
    for run in rows(db_path, "select * from runs where status = 'completed'"):
        parameters = [run["consortium_id"]]
        assert (
            scalar(
                db_path,
                "select count(*) from model_calls where consortium_id = ?",
                parameters,
            )
            == 3
        )
        assert (
            scalar(
                db_path,
                "select count(*) from evaluations where consortium_id = ?",
                parameters,
            )
            == 1
        )
        assert (
            scalar(
                db_path,
                "select count(*) from model_performance where consortium_id = ?",
                parameters,
            )
            == 2
        )


def test_sigkill_mid_run_loses_nothing_that_finished(tmp_path):
    db_path = tmp_path / "killed.db"
    recorder = start_batch(tmp_path, db_path)
    try:
        wait_for(mid_run(db_path, completed=2))
        committed = {
            row["request_id"]
            for row in rows(db_path, "select request_id from model_calls")
        }
        os.kill(recorder.pid, signal.SIGKILL)
        recorder.wait(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    assert recorder.returncode == -signal.SIGKILL

    assert integrity(db_path) == "ok"
    after = {
        row["request_id"] for row in rows(db_path, "select request_id from model_calls")
    }
    assert committed <= after
    assert_completed_runs_are_whole(db_path)
    left_running = {
        row["consortium_id"]
        for row in rows(
            db_path, "select consortium_id from runs where status = 'running'"
        )
    }
    assert len(left_running) == 1

    # Whoever opens the store next sees that the recording process is gone.
    with EvaluationStore(db_path) as store:
        assert store.mark_interrupted_runs() == 1
    interrupted = rows(db_path, "select * from runs where status = 'interrupted'")
    assert {run["consortium_id"] for run in interrupted} == left_running
    assert interrupted[0]["finished_at"] is not None
    assert "ended before the run finished" in interrupted[0]["error"]
    assert scalar(db_path, "select count(*) from runs where status = 'running'") == 0


def test_the_next_recorder_marks_a_killed_run_interrupted(tmp_path):
    db_path = tmp_path / "killed.db"
    recorder = start_batch(tmp_path, db_path)
    wait_for(mid_run(db_path, completed=0))
    recorder.kill()
    recorder.wait(timeout=30)

    next_recorder = start_recorder(
        [
            "run",
            "-m",
            "scripted-member",
            "--arbiter",
            "scripted-arbiter",
            "--db",
            str(db_path),
            "After the crash",
        ],
        recorder_environment(tmp_path),
    )
    exit_code, stderr = finish(next_recorder)
    assert exit_code == 0, stderr
    statuses = {
        row["prompt"]: row["status"] for row in rows(db_path, "select * from runs")
    }
    assert statuses.pop("After the crash") == "completed"
    assert "interrupted" in statuses.values()
    assert "running" not in statuses.values()


def test_a_live_recorder_is_not_marked_interrupted(tmp_path):
    db_path = tmp_path / "live.db"
    recorder = start_batch(tmp_path, db_path)
    try:
        wait_for(mid_run(db_path, completed=0))
        with EvaluationStore(db_path) as store:
            assert store.mark_interrupted_runs() == 0
        assert (
            scalar(db_path, "select count(*) from runs where status = 'running'") >= 1
        )
    finally:
        recorder.kill()
        recorder.wait(timeout=30)


@pytest.mark.parametrize("concurrency", ["1", "3"])
def test_ctrl_c_marks_current_runs_and_says_how_many_were_done(tmp_path, concurrency):
    db_path = tmp_path / "interrupted.db"
    recorder = start_batch(tmp_path, db_path, "--concurrency", concurrency)
    try:
        wait_for(mid_run(db_path, completed=2))
        recorder.send_signal(signal.SIGINT)
        stdout, stderr = recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    stderr_text = stderr.decode()
    assert recorder.returncode == 130, stderr_text
    assert "Traceback" not in stderr_text
    (message,) = [
        line for line in stderr_text.splitlines() if line.startswith("Interrupted: ")
    ]
    done = int(message.split()[1])
    assert message.startswith(f"Interrupted: {done} of {len(PROMPTS)} prompts done")
    # Every answer printed belongs to a prompt counted as done.
    assert len(stdout.decode().splitlines()) == done
    assert integrity(db_path) == "ok"

    statuses = [row["status"] for row in rows(db_path, "select status from runs")]
    assert "running" not in statuses
    assert statuses.count("interrupted") >= 1
    assert statuses.count("completed") >= done
    assert_completed_runs_are_whole(db_path)
    marked = int(message.split("; ")[1].split()[0])
    assert message.endswith(f"; {marked} runs marked interrupted.")
    # A run finishing in the moment between marking and exiting stays completed.
    assert 1 <= statuses.count("interrupted") <= marked
    for run in rows(db_path, "select * from runs where status = 'interrupted'"):
        assert run["error"] == "Interrupted by the user."
        assert run["finished_at"] is not None


def test_runs_and_run_info_show_a_killed_run_as_interrupted(tmp_path):
    db_path = tmp_path / "killed.db"
    recorder = start_batch(tmp_path, db_path)
    wait_for(mid_run(db_path, completed=1))
    recorder.kill()
    recorder.wait(timeout=30)
    (killed,) = rows(db_path, "select consortium_id from runs where status = 'running'")

    runner = CliRunner()
    listed = runner.invoke(
        cli, ["runs", "--json", "--limit", "0", "--db", str(db_path)]
    )
    assert listed.exit_code == 0, listed.output
    statuses = {
        run["consortium_id"]: run["status"] for run in json.loads(listed.stdout)
    }
    assert statuses[killed["consortium_id"]] == "interrupted"
    assert "running" not in statuses.values()
    info = runner.invoke(
        cli, ["run-info", killed["consortium_id"], "--json", "--db", str(db_path)]
    )
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["run"]["status"] == "interrupted"
    table = runner.invoke(cli, ["runs", "--db", str(db_path)])
    assert "interrupted" in table.stdout
