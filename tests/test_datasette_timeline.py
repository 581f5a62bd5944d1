"""The timeline's facts and drawing, from hand-made run trees."""

from __future__ import annotations

from datasette_consortium.timeline import timeline_calls, timeline_drawing


def call(model, role, start, duration, iteration=1, instance=1, error=None):
    return {
        "request_id": f"req-{model}-{iteration}-{instance}",
        "iteration_id": iteration,
        "role": role,
        "model": model,
        "instance": instance,
        "started_at": f"2025-01-01T00:00:{start:06.3f}+00:00",
        "finished_at": None,
        "duration_ms": duration,
        "error": error,
    }


def tree(*iterations):
    return {
        "run": {},
        "iterations": [
            {"iteration_id": number, "model_calls": calls, "evaluation": None}
            for number, calls in enumerate(iterations, start=1)
        ],
    }


def test_overlapping_calls_are_parallel_and_the_longest_member_is_slowest():
    entries = timeline_calls(
        tree(
            [
                call("fast", "member", 0.0, 100),
                call("slow", "member", 0.010, 900),
                call("judge", "arbiter", 1.0, 200),
            ]
        )
    )
    by_model = {entry["model"]: entry for entry in entries}
    assert by_model["fast"]["parallel"] and by_model["slow"]["parallel"]
    assert not by_model["judge"]["parallel"]
    assert by_model["slow"]["slowest"] and not by_model["fast"]["slowest"]
    assert by_model["slow"]["start_ms"] == 10.0
    assert by_model["judge"]["end_ms"] == 1200.0


def test_slowest_is_marked_per_iteration_and_never_for_a_lone_member():
    entries = timeline_calls(
        tree(
            [call("a", "member", 0, 50), call("b", "member", 0, 70)],
            [call("a", "member", 1, 90, iteration=2)],
        )
    )
    assert [entry["slowest"] for entry in entries] == [False, True, False]


def test_drawing_scales_bars_and_escapes_nothing_itself():
    entries = timeline_calls(
        tree([call("<b>x</b>", "member", 0, 500), call("y", "member", 0, 1000)])
    )
    drawing = timeline_drawing(entries)
    first, second = drawing["bars"]
    assert second["width"] == 2 * first["width"]
    assert first["label"] == "1 · <b>x</b> #1"  # the template escapes it
    assert drawing["total"] == "1.00 s"
    assert drawing["bars"][1]["kind"] == "slowest"


def test_failed_calls_are_drawn_as_errors_and_calls_without_times_skipped():
    no_time = call("late", "member", 0, 10)
    no_time["started_at"] = None
    entries = timeline_calls(
        tree([call("bad", "member", 0, 10, error="boom"), no_time])
    )
    assert [entry["model"] for entry in entries] == ["bad"]
    assert timeline_drawing(entries)["bars"][0]["kind"] == "error"
    assert timeline_drawing([]) is None


def test_ticks_of_a_short_run_differ():
    from datasette_consortium.timeline import timeline_drawing

    entry = {
        "iteration_id": 1,
        "role": "member",
        "model": "echo",
        "instance": 1,
        "start_ms": 0.0,
        "duration_ms": 2.4,
        "end_ms": 2.4,
        "error": None,
        "slowest": False,
        "parallel": False,
    }
    labels = [tick["label"] for tick in timeline_drawing([entry])["ticks"]]
    assert labels == ["0 ms", "0.60 ms", "1.20 ms", "1.80 ms", "2.40 ms"]
