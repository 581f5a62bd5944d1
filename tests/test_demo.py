import pathlib
import sqlite3
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_demo(tmp_path, *arguments):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--dir", str(tmp_path)]
        + list(arguments),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_records_offline_and_is_safe_to_run_twice(tmp_path):
    for _ in range(2):
        completed = run_demo(tmp_path, "--no-serve")
        assert completed.returncode == 0, completed.stderr
    conn = sqlite3.connect(tmp_path / "evaluations.db")
    statuses = dict(
        conn.execute("select status, count(*) from runs group by status").fetchall()
    )
    # The same demo both times: 12 consensus runs, 2 honest arbiter failures.
    assert statuses == {"completed": 12, "failed": 2}
    arbiters = {row[0] for row in conn.execute("select arbiter_model from evaluations")}
    assert arbiters == {"consensus", "echo"}
    assert conn.execute(
        "select count(*) from evaluations where error is not null"
    ).fetchone() == (2,)
    assert "Recorded 14 runs" in completed.stderr


def test_demo_serves_every_page(tmp_path):
    completed = run_demo(tmp_path, "--check")
    assert completed.returncode == 0, completed.stderr
    answered = [line for line in completed.stderr.splitlines() if line[:4] == "200 "]
    assert len(answered) == 4
    assert any("/-/consortium/runs/cons-" in line for line in answered)
