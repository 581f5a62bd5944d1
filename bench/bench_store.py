"""Time the analysis commands on a large synthetic store.

Builds a store with SIZE ``model_performance`` rows (default 1,000,000: that
many member answers, MEMBERS per run, one iteration each) through
``EvaluationStore``'s own write methods inside ``store.batch()``, then runs
each ``consortium-record`` analysis command in a fresh process and prints its
wall time and peak memory.

    .venv/bin/python bench/bench_store.py              # 1,000,000 rows
    .venv/bin/python bench/bench_store.py 100000       # a quicker look
    .venv/bin/python bench/bench_store.py --db /tmp/big.db --reuse

"query s" is the store method alone, in this process (best of --repeat);
"command s" is the whole command in a new process, start-up included.
Not a test: the figures depend on the machine. Compare them with each other
(a --since leaderboard against the full one, export memory against its size).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recorder import queries  # noqa: E402
from recorder.evaluation_store import EvaluationStore  # noqa: E402

MODELS = [
    "glm-4.6",
    "k2",
    "k2-t1",
    "qwen3-235b",
    "deepseek-3.1-terminus",
    "qwen3-coder",
    "longcat",
    "gpt-120b",
    "k2-think",
    "minimax-m2",
]
ARBITER = "k2-think-t1"
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=365)
BATCH_RUNS = 5_000


def timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def build(path: str, size: int, members: int, seed: int = 1) -> float:
    """Write ``size // members`` runs; return the seconds it took."""
    random_numbers = random.Random(seed)
    run_count = size // members
    step = SPAN / run_count
    began = time.perf_counter()
    with EvaluationStore(path) as store:
        for first in range(0, run_count, BATCH_RUNS):
            with store.batch():
                for number in range(first, min(first + BATCH_RUNS, run_count)):
                    write_run(
                        store, number, START + step * number, members, random_numbers
                    )
            done = min(first + BATCH_RUNS, run_count)
            elapsed = time.perf_counter() - began
            print(
                f"\r  built {done:,} of {run_count:,} runs "
                f"({done * members / elapsed:,.0f} model_performance rows/s)",
                end="",
                file=sys.stderr,
                flush=True,
            )
    print(file=sys.stderr)
    return time.perf_counter() - began


def write_run(
    store: EvaluationStore,
    number: int,
    started: datetime,
    members: int,
    random_numbers: random.Random,
) -> None:
    consortium_id = f"cons-{random_numbers.getrandbits(64):016x}"
    prompt = f"Synthetic prompt number {number}"
    chosen_models = [random_numbers.choice(MODELS) for _ in range(members)]
    counts: dict[str, int] = {}
    instances = []
    for model in chosen_models:
        counts[model] = counts.get(model, 0) + 1
        instances.append(counts[model])
    store.start_run(
        consortium_id=consortium_id,
        trace_id=f"{number:032x}",
        prompt=prompt,
        models=[{"model": model, "count": count} for model, count in counts.items()],
        arbiter=ARBITER,
        judging_method="default",
        confidence_threshold=0.8,
        min_iterations=1,
        max_iterations=3,
        started_at=timestamp(started),
    )

    answers = []
    for position, (model, instance) in enumerate(zip(chosen_models, instances)):
        label = LABELS[position]
        request_id = f"req-{random_numbers.getrandbits(48):012x}"
        failed = random_numbers.random() < 0.02
        duration_ms = round(random_numbers.lognormvariate(7, 0.5), 3)
        input_tokens, output_tokens = 40, random_numbers.randint(50, 400)
        store.record_model_call(
            request_id=request_id,
            consortium_id=consortium_id,
            iteration_id=1,
            role="member",
            model=model,
            instance=instance,
            label=label,
            prompt=prompt,
            response=None if failed else f"Answer {label} to prompt {number}",
            input_tokens=None if failed else input_tokens,
            output_tokens=None if failed else output_tokens,
            duration_ms=duration_ms,
            started_at=timestamp(started),
            finished_at=timestamp(started + timedelta(milliseconds=duration_ms)),
            status="error" if failed else "ok",
            error="Provider error: rate limited" if failed else None,
        )
        answers.append(
            {
                "model": model,
                "instance": instance,
                "label": label,
                "request_id": request_id,
                "input_tokens": None if failed else input_tokens,
                "output_tokens": None if failed else output_tokens,
                "duration_ms": duration_ms,
                "error": "Provider error: rate limited" if failed else None,
            }
        )

    usable = [answer for answer in answers if answer["error"] is None]
    random_numbers.shuffle(usable)
    for rank, answer in enumerate(usable, start=1):
        answer["rank"] = rank
        answer["chosen"] = rank == 1
    confidence = round(random_numbers.uniform(0.5, 1.0), 3)
    decided = started + timedelta(seconds=3)
    arbiter_request_id = f"req-{random_numbers.getrandbits(48):012x}"
    store.record_model_call(
        request_id=arbiter_request_id,
        consortium_id=consortium_id,
        iteration_id=1,
        role="arbiter",
        model=ARBITER,
        prompt=f"Judge the answers to prompt {number}",
        response=f"<confidence>{confidence}</confidence>",
        input_tokens=600,
        output_tokens=150,
        duration_ms=900.0,
        started_at=timestamp(started + timedelta(seconds=2)),
        finished_at=timestamp(decided),
    )
    synthesis = f"The synthesized answer to prompt {number}"
    store.store_evaluation(
        consortium_id,
        1,
        prompt,
        ARBITER,
        answers,
        {
            "confidence": confidence,
            "synthesis": synthesis,
            "analysis": "The answers mostly agree.",
            "dissent": "",
            "needs_iteration": False,
            "refinement_areas": [],
            "ranking": [answer["label"] for answer in usable],
        },
        {"input": 600, "output": 150},
        900.0,
        request_id=arbiter_request_id,
        judging_method="default",
        timestamp=timestamp(decided),
    )
    store.finish_run(
        consortium_id,
        status="completed",
        iteration_count=1,
        final_confidence=confidence,
        synthesis=synthesis,
        finished_at=timestamp(decided),
        duration_ms=3000.0,
        input_tokens=40 * members + 600,
        output_tokens=1000,
    )


def run_command(db_path: str, arguments: list[str]) -> tuple[float, int, int]:
    """Run ``consortium-record ARGUMENTS`` in a new process.

    Returns (seconds, peak RSS in MiB, lines written to stdout).
    """
    command = [
        sys.executable,
        "-c",
        "from recorder.cli import cli; cli()",
        *arguments,
        "--db",
        db_path,
    ]
    with tempfile.TemporaryFile() as output:
        began = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=output, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        errors = process.stderr.read().decode() if process.stderr else ""
        if process.returncode:
            raise SystemExit(f"{' '.join(arguments)} failed: {errors.strip()}")
        output.seek(0)
        lines = sum(1 for _ in output)
    return elapsed, usage.ru_maxrss // 1024, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "size",
        nargs="?",
        type=int,
        default=1_000_000,
        help="model_performance rows to build (default 1,000,000)",
    )
    parser.add_argument("--members", type=int, default=5, help="members per run")
    parser.add_argument("--db", help="store path (default: a new temporary file)")
    parser.add_argument(
        "--reuse", action="store_true", help="time an existing --db without building"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command")
    options = parser.parse_args()

    directory = None
    db_path = options.db
    if db_path is None:
        directory = tempfile.TemporaryDirectory(prefix="consortium-bench-")
        db_path = os.path.join(directory.name, "evaluations.db")
    if not options.reuse:
        if os.path.exists(db_path):
            raise SystemExit(f"{db_path} exists; pass --reuse to time it as it is.")
        print(f"Building {db_path}: {options.size:,} model_performance rows ...")
        seconds = build(db_path, options.size, options.members)
        print(
            f"build: {seconds:.1f} s, {options.size / seconds:,.0f} "
            "model_performance rows/s through EvaluationStore in store.batch()"
        )
    with EvaluationStore(db_path) as store:
        counts = {table: store.count_rows(table) for table in ("runs", "model_calls")}
        rows = store.count_rows("model_performance")
        middle = store.query(
            "select consortium_id from runs order by started_at "
            "limit 1 offset (select count(*) / 2 from runs)"
        )[0]["consortium_id"]
        last_month = store.query("select max(timestamp) as t from model_performance")[
            0
        ]["t"][:10]
    size_mib = os.path.getsize(db_path) / 2**20
    print(
        f"store: {rows:,} model_performance rows, {counts['runs']:,} runs, "
        f"{counts['model_calls']:,} model_calls, {size_mib:,.0f} MiB"
    )
    recent = (datetime.fromisoformat(last_month) - timedelta(days=30)).date()

    export_path = os.path.join(os.path.dirname(db_path), "bench-export.jsonl")
    since_recent = queries.normalize_since(str(recent))
    since_half = queries.normalize_since("2025-07-01")
    commands: list[tuple[str, list[str], Callable[[EvaluationStore], int]]] = [
        ("leaderboard", ["leaderboard"], lambda store: len(store.get_leaderboard())),
        (
            "leaderboard --json",
            ["leaderboard", "--json"],
            lambda store: len(store.get_leaderboard()),
        ),
        (
            f"leaderboard --since {recent}",
            ["leaderboard", "--since", str(recent)],
            lambda store: len(store.get_leaderboard(since=since_recent)),
        ),
        (
            "leaderboard --since 2025-07-01",
            ["leaderboard", "--since", "2025-07-01"],
            lambda store: len(store.get_leaderboard(since=since_half)),
        ),
        (
            "leaderboard --model k2",
            ["leaderboard", "--model", "k2"],
            lambda store: len(store.get_leaderboard(models=["k2"])),
        ),
        (
            "leaderboard --sort p95_duration_ms",
            ["leaderboard", "--sort", "p95_duration_ms"],
            lambda store: len(store.get_leaderboard(sort="p95_duration_ms")),
        ),
        ("runs", ["runs"], lambda store: len(store.list_runs())),
        (
            "runs --status failed",
            ["runs", "--status", "failed"],
            lambda store: len(store.list_runs(status="failed")),
        ),
        (
            "run-info (a 14-character prefix)",
            ["run-info", middle[:14]],
            lambda store: len(store.get_run(store.find_run_ids(middle[:14])[0])),
        ),
        (
            f"export-training --since {recent}",
            ["export-training", export_path, "--since", str(recent)],
            lambda store: export(store, since_recent),
        ),
        (
            "export-training (all)",
            ["export-training", export_path],
            lambda store: export(store, None),
        ),
    ]

    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from recorder.cli import cli; cli()", "--help"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    print(f"process start-up (--help): {time.perf_counter() - began:.2f} s")
    print(f"\n{'command':<38} {'query s':>8} {'command s':>10} {'peak RSS MiB':>13}")
    with EvaluationStore(db_path) as store:
        for name, arguments, in_process in commands:
            query_timings, command_timings, peak = [], [], 0
            for _ in range(options.repeat):
                began = time.perf_counter()
                produced = in_process(store)
                query_timings.append(time.perf_counter() - began)
                seconds, rss, _ = run_command(db_path, arguments)
                command_timings.append(seconds)
                peak = max(peak, rss)
            line = (
                f"{name:<38} {min(query_timings):>8.3f} {min(command_timings):>10.2f}"
                f" {peak:>13}"
            )
            if arguments[0] == "export-training":
                line += (
                    f"   {produced:,} lines,"
                    f" {produced / min(query_timings):,.0f} lines/s"
                )
            print(line, flush=True)
    os.remove(export_path)
    if directory is not None:
        directory.cleanup()


def export(store: EvaluationStore, since: str | None) -> int:
    """Write the training export to nowhere, as the command builds it."""
    lines = 0
    with open(os.devnull, "wb") as sink:
        for example in store.iter_training_examples(since=since):
            sink.write(queries.training_line(example).encode("utf-8") + b"\n")
            lines += 1
    return lines


if __name__ == "__main__":
    main()
