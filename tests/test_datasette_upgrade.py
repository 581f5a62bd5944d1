import sqlite3

import pytest
from datasette_fixtures import datasette_for

from recorder.evaluation_store import EvaluationStore
from recorder.rollups import TRIGGERS


def make_first_release_store(path):
    """A store as the first release left it: two migrations, no rollups."""
    with EvaluationStore(path) as store:
        store.store_evaluation(
            "cons-00000000000000a1",
            1,
            "Question",
            "judge",
            [{"model": "alpha", "rank": 1, "duration_ms": 120.0}],
            {"confidence": 0.8, "synthesis": "Answer"},
        )
    conn = sqlite3.connect(path)
    for trigger in TRIGGERS:
        conn.execute(f"drop trigger {trigger}")
    conn.execute("drop table model_daily_stats")
    conn.execute("drop table model_daily_latency")
    conn.execute("delete from _migrations where name > 'm002'")
    conn.commit()
    conn.close()


@pytest.mark.asyncio
async def test_datasette_brings_an_old_store_up_to_date(tmp_path):
    path = tmp_path / "evaluations.db"
    make_first_release_store(path)
    datasette = await datasette_for(path)
    response = await datasette.client.get("/evaluations/leaderboard.json?_shape=array")
    assert response.status_code == 200, response.text
    (row,) = response.json()
    assert row["model"] == "alpha" and row["chosen_rate"] == 1.0
    assert row["p95_duration_ms"] == 120.0


@pytest.mark.asyncio
async def test_an_immutable_old_store_is_left_untouched(tmp_path):
    path = tmp_path / "evaluations.db"
    make_first_release_store(path)
    before = path.read_bytes()
    from datasette.app import Datasette

    datasette = Datasette(immutables=[str(path)])
    await datasette.invoke_startup()
    response = await datasette.client.get("/evaluations/recent_runs.json")
    assert response.status_code == 200
    assert path.read_bytes() == before


@pytest.mark.asyncio
async def test_startup_settles_runs_whose_recorder_died(tmp_path):
    import socket
    import subprocess
    import sys

    path = tmp_path / "evaluations.db"
    dead_process = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_process.wait()
    with EvaluationStore(path) as store:
        store.start_run(
            consortium_id="cons-00000000000000d1",
            trace_id="0" * 32,
            prompt="Lost",
            models=[{"model": "alpha", "count": 1}],
            arbiter="judge",
            judging_method="default",
            confidence_threshold=0.8,
            min_iterations=1,
            max_iterations=3,
        )
        store.conn.execute(
            "update runs set process_id = ?, hostname = ?",
            [dead_process.pid, socket.gethostname()],
        )
    datasette = await datasette_for(path)
    response = await datasette.client.get("/evaluations/recent_runs.json?_shape=array")
    (run,) = response.json()
    assert run["status"] == "interrupted"
