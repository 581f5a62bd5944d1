"""Several recorder processes writing to one store at once lose nothing."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from reliability_support import (
    finish,
    integrity,
    recorder_environment,
    rows,
    scalar,
    start_recorder,
    wait_for,
)

from recorder.evaluation_store import EvaluationStore

MEMBERS = 3
DATASETTE = str(pathlib.Path(sys.executable).parent / "datasette")


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError):
        return 0  # not listening (yet)


def test_datasette_keeps_answering_while_recorders_write(tmp_path):
    db_path = tmp_path / "evaluations.db"
    EvaluationStore(db_path).close()
    port = free_port()
    server = subprocess.Popen(
        [DATASETTE, "serve", str(db_path), "-h", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/evaluations"
    try:
        wait_for(lambda: fetch(f"{base}.json") == 200, timeout=60)
        environment = recorder_environment(tmp_path)
        recorders = [
            start_recorder(
                ["run", "-m", f"scripted-member:{MEMBERS}", "--arbiter"]
                + ["scripted-arbiter", "--concurrency", "2", "--db", str(db_path)],
                environment,
                prompts=[f"writer {w} prompt {r}" for r in range(15)],
            )
            for w in range(3)
        ]
        statuses: list[tuple[str, int]] = []
        requests_during_writes = 0
        while any(r.poll() is None for r in recorders) and len(statuses) < 400:
            ids = [
                row["consortium_id"]
                for row in rows(
                    db_path,
                    "select consortium_id from runs order by started_at desc limit 2",
                )
            ]
            pages = [
                "/runs.json?_sort_desc=started_at",
                "/recent_runs.json",
                "/leaderboard.json",
                "/model_calls.jsonl?_size=50",
                "/token_usage_by_model",
            ] + [f"/-/consortium/runs/{i}{s}" for i in ids for s in ("", ".json")]
            for page in pages:
                statuses.append((page, fetch(base + page)))
                requests_during_writes += 1
        for recorder in recorders:
            exit_code, stderr = finish(recorder)
            assert exit_code == 0, stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert requests_during_writes >= 20
    failures = [(page, status) for page, status in statuses if status >= 500]
    assert failures == []
    assert [(page, status) for page, status in statuses if status != 200] == []
    assert scalar(db_path, "select count(*) from runs where status = 'completed'") == 45
