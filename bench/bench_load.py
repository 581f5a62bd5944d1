"""Many recorder processes writing to one store at once: is anything lost?

Starts PROCESSES ``consortium-record run`` processes (the scripted test models,
registered through ``llm``'s plugin manager by ``tests/scripted_cli.py``), each
with RUNS prompts on stdin, all on one new ``evaluations.db``. Each run asks
MEMBERS member instances in parallel and one arbiter. Afterwards it counts
every table against what the runs must have written and runs
``PRAGMA integrity_check``.

    .venv/bin/python bench/bench_load.py                      # 8 x 25
    .venv/bin/python bench/bench_load.py --processes 16 --runs 50 --concurrency 4

Not a test: wall time and runs/s depend on the machine; rows expected, rows
found, losses and integrity do not.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
SCRIPTED_CLI = REPO / "tests" / "scripted_cli.py"


def start(
    db_path: pathlib.Path,
    folder: pathlib.Path,
    number: int,
    runs: int,
    members: int,
    concurrency: int,
) -> subprocess.Popen[bytes]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLM_", "SCRIPTED_"))
    }
    environment.update(
        LLM_USER_PATH=str(folder / "llm-user"),
        LLM_CONSORTIUM_LOG_FILE=str(folder / "consortium.log"),
        PYTHONPATH=str(REPO),
    )
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTED_CLI), "run"]
        + ["-m", f"scripted-member:{members}", "--arbiter", "scripted-arbiter"]
        + ["--concurrency", str(concurrency), "--db", str(db_path)],
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    prompts = "".join(f"process {number} prompt {run}\n" for run in range(runs))
    assert process.stdin is not None
    process.stdin.write(prompts.encode())
    process.stdin.close()
    process.stdin = None
    return process


def count(conn: sqlite3.Connection, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--runs", type=int, default=25, help="runs per process")
    parser.add_argument("--members", type=int, default=3, help="instances per run")
    parser.add_argument("--concurrency", type=int, default=2, help="runs at once")
    options = parser.parse_args()

    folder = pathlib.Path(tempfile.mkdtemp(prefix="bench-load-"))
    db_path = folder / "evaluations.db"
    began = time.perf_counter()
    processes = [
        start(
            db_path,
            folder,
            number,
            options.runs,
            options.members,
            options.concurrency,
        )
        for number in range(options.processes)
    ]
    failed_processes = 0
    locked_messages = 0
    for process in processes:
        _, stderr = process.communicate()
        text = stderr.decode("utf-8", "replace")
        failed_processes += process.returncode != 0
        locked_messages += "locked" in text.lower()
    wall = time.perf_counter() - began

    runs = options.processes * options.runs
    expected = {
        "runs": runs,
        "model_calls": runs * (options.members + 1),
        "evaluations": runs,
        "model_performance": runs * options.members,
    }
    conn = sqlite3.connect(db_path)
    found = {table: count(conn, f"select count(*) from {table}") for table in expected}
    completed = count(conn, "select count(*) from runs where status = 'completed'")
    integrity = conn.execute("pragma integrity_check").fetchone()[0]
    conn.close()

    losses = sum(expected[table] - found[table] for table in expected)
    report = {
        "processes": options.processes,
        "runs_per_process": options.runs,
        "members_per_run": options.members,
        "concurrency_per_process": options.concurrency,
        "rows_expected": expected,
        "rows_found": found,
        "runs_completed": completed,
        "losses": losses,
        "failed_processes": failed_processes,
        "database_locked_messages": locked_messages,
        "integrity_check": integrity,
        "wall_seconds": round(wall, 2),
        "runs_per_second": round(runs / wall, 1),
        "store": str(db_path),
    }
    print(json.dumps(report, indent=2))
    if losses or failed_processes or locked_messages or integrity != "ok":
        sys.exit(1)


if __name__ == "__main__":
    main()
