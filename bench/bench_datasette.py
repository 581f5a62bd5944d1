"""Time the Datasette plugin's pages and exports on a store of many runs.

Usage: ``.venv/bin/python bench/bench_datasette.py [--runs 100000] [--db PATH]``

Builds (or reuses) a store of completed runs, two members each, then times
each page through ``datasette.client`` in-process: the median of several
requests for pages, one pass for the full exports. Prints one line a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import resource
import statistics
import sys
import tempfile
import time

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
    middle = f"cons-{runs // 2:016x}"

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


if __name__ == "__main__":
    main()
