"""Record a batch of consortiums offline, then serve them in Datasette.

Members are llm-echo's ``echo`` model, which needs no key. Most runs are judged
by ``consensus`` (no arbiter model); two are judged by ``echo`` as an LLM
arbiter, which cannot follow the arbiter's format, so they end ``failed`` and
fill the failed-evaluations page honestly. Run through ``scripts/demo``, which
installs everything first.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "scripts" / "demo-prompts.txt"
METADATA = ROOT / "metadata.yml"
BIN = pathlib.Path(sys.executable).parent


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir",
        default=str(ROOT / "demo"),
        help="Folder for the demo's evaluations.db and log (default: ./demo)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Datasette's host")
    parser.add_argument("--port", type=int, default=8001, help="Datasette's port")
    parser.add_argument(
        "--no-serve", action="store_true", help="Record the runs, do not serve them"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="Serve, fetch the pages once to check they answer, then stop",
    )
    return parser.parse_args()


def record(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "evaluations.db"
    # A fresh store each time, so running the demo twice gives the same demo.
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    environment = {
        **os.environ,
        "LLM_CONSORTIUM_DB": str(db_path),
        "LLM_CONSORTIUM_LOG_FILE": str(folder / "consortium.log"),
    }
    prompts = PROMPTS.read_text()
    command = [str(BIN / "consortium-record"), "run", "--db", str(db_path)]

    say(f"Recording {len(prompts.splitlines())} consortiums judged by consensus...")
    run(
        command
        + ["-m", "echo:3", "--judging-method", "consensus", "--concurrency", "4"],
        prompts,
        environment,
    )
    say("Recording 2 runs with echo as an LLM arbiter (they fail, on purpose)...")
    run(
        command + ["-m", "echo:2", "--arbiter", "echo", "--max-iterations", "1"],
        "\n".join(prompts.splitlines()[:2]),
        environment,
        expect_failure=True,
    )
    return db_path


def run(
    command: list[str],
    stdin: str,
    environment: dict[str, str],
    expect_failure: bool = False,
) -> None:
    completed = subprocess.run(
        command, input=stdin, text=True, capture_output=True, env=environment
    )
    if completed.returncode != 0 and not expect_failure:
        sys.exit(f"The demo could not record its runs:\n{completed.stderr}")


def summary(db_path: pathlib.Path) -> str:
    conn = sqlite3.connect(db_path)
    try:
        counts = {
            table: conn.execute(f"select count(*) from {table}").fetchone()[0]
            for table in ("runs", "model_calls", "evaluations", "model_performance")
        }
        first_run = conn.execute(
            "select consortium_id from runs where status = 'completed' "
            "order by started_at limit 1"
        ).fetchone()[0]
    finally:
        conn.close()
    described = ", ".join(f"{count} {table}" for table, count in counts.items())
    say(f"Recorded {described} in {db_path}")
    return first_run


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def serve(db_path: pathlib.Path, host: str, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(BIN / "datasette"),
            "serve",
            str(db_path),
            "--metadata",
            str(METADATA),
            "--host",
            host,
            "--port",
            str(port),
        ]
    )


def check(db_path: pathlib.Path, host: str, first_run: str) -> None:
    port = free_port(host)
    server = serve(db_path, host, port)
    base = f"http://{host}:{port}"
    pages = [
        "/evaluations",
        "/evaluations/leaderboard",
        "/evaluations/runs",
        f"/evaluations/-/consortium/runs/{first_run}",
    ]
    try:
        wait_until_up(base + "/-/versions.json", server)
        for page in pages:
            with urllib.request.urlopen(base + page, timeout=30) as response:
                say(f"{response.status} {page}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_until_up(url: str, server: subprocess.Popen) -> None:
    for _ in range(300):
        if server.poll() is not None:
            sys.exit("Datasette stopped before it answered.")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    sys.exit("Datasette did not answer within 30 seconds.")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    arguments = parse_arguments()
    if shutil.which("consortium-record", path=str(BIN)) is None:
        sys.exit("consortium-record is not installed here: run scripts/demo.")
    db_path = record(pathlib.Path(arguments.dir).resolve())
    first_run = summary(db_path)
    if arguments.check:
        check(db_path, arguments.host, first_run)
        return
    if arguments.no_serve:
        return
    base = f"http://{arguments.host}:{arguments.port}"
    say(f"\nOpen {base}/evaluations in your browser (Ctrl-C stops the server).")
    say(f"A run's page: {base}/evaluations/-/consortium/runs/{first_run}")
    server = serve(db_path, arguments.host, arguments.port)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
