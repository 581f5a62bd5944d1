"""Time the Datasette plugin's pages and exports on a store of many runs.

Usage: ``.venv/bin/python bench/bench_datasette.py [--runs 100000] [--db PATH]``

Builds (or reuses) a store of completed runs, two members each, then times
each page through ``datasette.client`` in-process: the median of several
requests for pages, one pass for the full exports. Last, the full training
export through a real ``datasette serve`` on 127.0.0.1, with the server's peak
memory. Prints one line a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from datasette_fixtures import build_bulk_store, datasette_for  # noqa: E402

from recorder.evaluation_store import EvaluationStore  # noqa: E402

PAGES = [
    ("run page (HTML)", "/evaluations/-/consortium/runs/{middle}"),
    ("run page (JSON)", "/evaluations/-/consortium/runs/{middle}.json"),
    ("recent_runs", "/evaluations/recent_runs"),
    ("leaderboard", "/evaluations/leaderboard.json"),
    ("leaderboard since", "/evaluations/leaderboard.json?since=2025-02-01"),
    ("token_usage_by_model", "/evaluations/token_usage_by_model.json"),
    ("failed_evaluations", "/evaluations/failed_evaluations.json"),
    ("training_export (first page)", "/evaluations/training_export.json"),
    ("runs table (HTML)", "/evaluations/runs"),
]
EXPORTS = [
    ("training_export.jsonl (all)", "/evaluations/training_export.jsonl"),
    (
        "training_export.jsonl min_confidence=0.9",
        "/evaluations/training_export.jsonl?min_confidence=0.9",
    ),
    ("runs.jsonl (all)", "/evaluations/runs.jsonl"),
]


def ensure_store(path: pathlib.Path, runs: int) -> None:
    if path.exists():
        with EvaluationStore(path) as store:
            if store.count_rows("runs") == runs:
                return
        path.unlink()
    started = time.perf_counter()
    build_bulk_store(path, runs)
    print(f"built {runs} runs in {time.perf_counter() - started:.1f} s: {path}")


async def measure(path: pathlib.Path, runs: int, repeats: int) -> None:
    datasette = await datasette_for(path)
    # A run from the middle of the store, whichever way its IDs were made.
    with EvaluationStore(path) as store:
        middle = store.query(
            "select consortium_id from runs order by rowid limit 1 offset ?",
            [runs // 2],
        )[0]["consortium_id"]

    def url_for(template: str) -> str:
        return template.replace("/evaluations/", f"/{path.stem}/", 1).format(
            middle=middle
        )

    for label, template in PAGES:
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            response = await datasette.client.get(url_for(template))
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                print(f"{label}: HTTP {response.status_code}: {response.text[:200]}")
                break
        else:
            print(f"{label:45} median {statistics.median(timings):8.1f} ms")

    for label, template in EXPORTS:
        started = time.perf_counter()
        response = await datasette.client.get(url_for(template))
        seconds = time.perf_counter() - started
        lines = response.text.count("\n")
        size = len(response.content) / 1e6
        print(
            f"{label:45} {seconds:8.2f} s  {lines} lines  {size:.1f} MB  "
            f"{lines / seconds:,.0f} lines/s  (HTTP {response.status_code})"
        )
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (test client buffers bodies): {max_rss:.0f} MB")


def measure_served_export(path: pathlib.Path) -> None:
    """The training export through a real ``datasette serve`` on loopback.

    Reads the streamed body as a client would, a block at a time, and reports
    the server's own peak resident memory (VmHWM) afterwards.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(pathlib.Path(sys.executable).parent / "datasette"), "serve", str(path)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/{path.stem}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}.json", timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        started = time.perf_counter()
        lines = 0
        with urllib.request.urlopen(f"{base}/training_export.jsonl") as response:
            while block := response.read(1 << 20):
                lines += block.count(b"\n")
        seconds = time.perf_counter() - started
        status = pathlib.Path(f"/proc/{server.pid}/status").read_text()
        peak = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        peak_memory = peak.split(":")[1].strip()
        print(
            f"{'served training_export.jsonl (all)':45} {seconds:8.2f} s  {lines} "
            f"lines  {lines / seconds:,.0f} lines/s  server peak {peak_memory}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--db", type=pathlib.Path)
    parser.add_argument("--repeats", type=int, default=9)
    arguments = parser.parse_args()
    folder = pathlib.Path(tempfile.gettempdir()) / f"bench-datasette-{arguments.runs}"
    path = arguments.db or folder / "evaluations.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    ensure_store(path, arguments.runs)
    asyncio.run(measure(path, arguments.runs, arguments.repeats))
    measure_served_export(path)


if __name__ == "__main__":
    main()
