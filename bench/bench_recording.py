"""What recording costs: per-call overhead, parallel members, batch throughput.

    .venv/bin/python bench/bench_recording.py [--calls 3000] [--profile]

1. Overhead: the same calls to a zero-latency model, made bare through llm and
   through the recording proxy (IDs, a JSON log line, a committed row),
   interleaved one for one; prints medians, p99s and the difference.
2. Parallel members: 8 members of 200 ms and a 50 ms arbiter, one iteration;
   prints the wall time against the ideal 250 ms.
3. Batch: 200 prompts on stdin with --concurrency 16, 3 members of 100 ms and
   a 50 ms arbiter; prints prompts/s against the ideal 16 / 0.15 s.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pathlib
import pstats
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import bench_models  # noqa: E402
import llm  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from recorder import create_consortium  # noqa: E402
from recorder.cli import cli  # noqa: E402
from recorder.evaluation_store import EvaluationStore  # noqa: E402
from recorder.logger import StructuredLogger  # noqa: E402
from recorder.proxy import RecordingProxy  # noqa: E402
from recorder.tracing import consortium_context, iteration_context  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_overhead(folder: pathlib.Path, calls: int, profile: bool) -> None:
    store = EvaluationStore(folder / "overhead.db")
    proxy = RecordingProxy(store, StructuredLogger("recorder.bench"), retries=0)
    model = llm.get_model("bench-zero")
    prompt = "Explain quantum entanglement in simple terms"
    bare: list[float] = []
    recorded: list[float] = []

    def bare_call() -> None:
        response = model.prompt(prompt, stream=False)
        response.text()
        response.usage()

    profiler = cProfile.Profile() if profile else None
    with consortium_context(), iteration_context(1):
        for _ in range(200):  # warm up both paths
            bare_call()
            proxy.call(model, prompt, model_name="bench-zero")
        for _ in range(calls):
            start = time.perf_counter()
            bare_call()
            bare.append((time.perf_counter() - start) * 1000)
            if profiler:
                profiler.enable()
            start = time.perf_counter()
            proxy.call(model, prompt, model_name="bench-zero")
            recorded.append((time.perf_counter() - start) * 1000)
            if profiler:
                profiler.disable()

    bare_median, recorded_median = statistics.median(bare), statistics.median(recorded)
    bare_p99, recorded_p99 = percentile(bare, 0.99), percentile(recorded, 0.99)
    print(f"1. Recording overhead, {calls} calls each, interleaved")
    print(f"   bare llm call      median {bare_median:.3f} ms   p99 {bare_p99:.3f} ms")
    print(
        f"   recorded call      median {recorded_median:.3f} ms   "
        f"p99 {recorded_p99:.3f} ms"
    )
    print(
        f"   added by recording median {recorded_median - bare_median:.3f} ms "
        f"(target <= 0.5)   p99 {recorded_p99 - bare_p99:.3f} ms (target <= 5)"
    )
    print(f"   rows committed: {store.count_rows('model_calls')}")
    if profiler:
        print("   top entries of the recorded path (cumulative):")
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(12)


def iteration_times(
    folder: pathlib.Path, members: str, repetitions: int
) -> list[float]:
    consortium = create_consortium(
        [members],
        arbiter="bench-arbiter-50ms",
        max_iterations=1,
        db_path=str(folder / "parallel.db"),
    )
    consortium.orchestrate("warm up")
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        result = consortium.orchestrate("How do parallel members behave?")
        times.append((time.perf_counter() - start) * 1000)
        assert result["status"] == "completed", result["error"]
    return times


def bench_parallel(folder: pathlib.Path, repetitions: int = 7) -> None:
    one = statistics.median(iteration_times(folder, "bench-member-200ms", repetitions))
    times = iteration_times(folder, "bench-member-200ms:8", repetitions)
    best, median = min(times), statistics.median(times)
    print("2. One iteration: 8 members of 200 ms + a 50 ms arbiter")
    print(
        f"   wall time median {median:.1f} ms, best {best:.1f} ms; ideal 250 ms; "
        f"ratio {median / 250:.3f} (target <= 1.15)"
    )
    print(
        f"   one member instead of 8: median {one:.1f} ms; 8 members take "
        f"{median / one:.2f} x as long (8 x if they ran one after another)"
    )


def bench_batch(
    folder: pathlib.Path, prompts: int = 200, concurrency: int = 16
) -> None:
    stdin = "".join(f"Batch prompt number {number}\n" for number in range(prompts))
    arguments = [
        "run",
        "-m",
        "bench-member-100ms:3",
        "--arbiter",
        "bench-arbiter-50ms",
        "--max-iterations",
        "1",
        "--concurrency",
        str(concurrency),
        "--db",
        str(folder / "batch.db"),
    ]
    # llm loads its plugins (the OpenAI SDK among them) on the first model
    # lookup of a process: a one-off cost, timed apart from the batch.
    start = time.perf_counter()
    llm.get_models()
    plugin_loading = time.perf_counter() - start

    start = time.perf_counter()
    result = CliRunner().invoke(cli, arguments, input=stdin)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    ideal = concurrency / 0.150
    achieved = prompts / elapsed
    print(
        f"3. Batch: {prompts} prompts, --concurrency {concurrency}, 3 x 100 ms + 50 ms"
    )
    print(f"   llm's one-off plugin loading before the batch: {plugin_loading:.2f} s")
    print(
        f"   {elapsed:.2f} s, {achieved:.1f} prompts/s; ideal {ideal:.1f} prompts/s; "
        f"{achieved / ideal:.0%} of ideal (target >= 80%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=["overhead", "parallel", "batch"])
    arguments = parser.parse_args()
    bench_models.register()
    with tempfile.TemporaryDirectory() as temporary:
        folder = pathlib.Path(temporary)
        os.environ["LLM_CONSORTIUM_LOG_FILE"] = str(folder / "consortium.log")
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores")
        if arguments.only in (None, "overhead"):
            bench_overhead(folder, arguments.calls, arguments.profile)
        if arguments.only in (None, "parallel"):
            bench_parallel(folder)
        if arguments.only in (None, "batch"):
            bench_batch(folder)


if __name__ == "__main__":
    main()
