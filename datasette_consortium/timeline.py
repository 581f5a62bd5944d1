"""The timeline of a run's model calls: when each started, how long it took.

:func:`timeline_calls` gives the facts (offsets in milliseconds from the
run's first call, which calls overlapped, which member was the slowest of its
iteration); :func:`timeline_drawing` turns them into the shapes of an SVG
that the run page draws inline, so the picture needs no script and no fetch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

LABEL_WIDTH = 260
CHART_WIDTH = 640
ROW_HEIGHT = 24
BAR_HEIGHT = 14
AXIS_HEIGHT = 28
MIN_BAR_WIDTH = 2.0


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _milliseconds_between(start: datetime, end: datetime) -> float:
    try:
        return (end - start).total_seconds() * 1000
    except TypeError:  # one naive, one aware: treat both as UTC wall clock
        return (
            end.replace(tzinfo=None) - start.replace(tzinfo=None)
        ).total_seconds() * 1000


def timeline_calls(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per model call, in the order the page lists them."""
    calls = [
        call for iteration in tree["iterations"] for call in iteration["model_calls"]
    ]
    starts = [_parse_time(call.get("started_at")) for call in calls]
    known = [start for start in starts if start is not None]
    if not known:
        return []
    origin = min(known)

    entries = []
    for call, start in zip(calls, starts):
        if start is None:
            continue
        duration = call.get("duration_ms")
        if duration is None:
            finished = _parse_time(call.get("finished_at"))
            duration = _milliseconds_between(start, finished) if finished else 0.0
        start_ms = _milliseconds_between(origin, start)
        entries.append(
            {
                "request_id": call.get("request_id"),
                "iteration_id": call.get("iteration_id"),
                "role": call.get("role"),
                "model": call.get("model"),
                "instance": call.get("instance"),
                "start_ms": round(start_ms, 1),
                "duration_ms": round(float(duration), 1),
                "end_ms": round(start_ms + float(duration), 1),
                "error": call.get("error"),
                "parallel": False,
                "slowest": False,
            }
        )
    _mark_parallel_and_slowest(entries)
    return entries


def _mark_parallel_and_slowest(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        entry["parallel"] = any(
            other is not entry
            and other["start_ms"] < entry["end_ms"]
            and entry["start_ms"] < other["end_ms"]
            for other in entries
        )
    iterations = {entry["iteration_id"] for entry in entries}
    for iteration_id in iterations:
        members = [
            entry
            for entry in entries
            if entry["iteration_id"] == iteration_id and entry["role"] == "member"
        ]
        if len(members) > 1:
            max(members, key=lambda entry: entry["duration_ms"])["slowest"] = True


def _format_ms(milliseconds: float) -> str:
    # Enough digits that the ticks of a run of a few milliseconds differ.
    if milliseconds >= 1000:
        return f"{milliseconds / 1000:.2f} s"
    if milliseconds >= 100 or milliseconds == 0:
        return f"{milliseconds:.0f} ms"
    if milliseconds >= 10:
        return f"{milliseconds:.1f} ms"
    return f"{milliseconds:.2f} ms"


def _bar_kind(entry: dict[str, Any]) -> str:
    if entry["error"]:
        return "error"
    if entry["role"] == "arbiter":
        return "arbiter"
    return "slowest" if entry["slowest"] else "member"


def timeline_drawing(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Sizes, bars and ticks for the SVG; ``None`` when no call has a start time.

    Every text in the result is plain (the template escapes it).
    """
    if not entries:
        return None
    total_ms = max(max(entry["end_ms"] for entry in entries), 1.0)
    scale = CHART_WIDTH / total_ms

    bars = []
    for row, entry in enumerate(entries):
        instance = entry["instance"]
        name = entry["model"] or "unknown model"
        if entry["role"] == "arbiter":
            name = f"arbiter: {name}"
        elif instance is not None:
            name = f"{name} #{instance}"
        kind = _bar_kind(entry)
        notes = [_format_ms(entry["duration_ms"])]
        if kind == "slowest":
            notes.append("slowest member")
        if entry["parallel"]:
            notes.append("in parallel")
        if entry["error"]:
            notes.append("failed")
        x = LABEL_WIDTH + entry["start_ms"] * scale
        bars.append(
            {
                "kind": kind,
                "label": f"{entry['iteration_id']} · {name}",
                "x": round(x, 1),
                "y": AXIS_HEIGHT + row * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2,
                "text_y": AXIS_HEIGHT + row * ROW_HEIGHT + ROW_HEIGHT / 2 + 4,
                "width": round(max(entry["duration_ms"] * scale, MIN_BAR_WIDTH), 1),
                "height": BAR_HEIGHT,
                "note": ", ".join(notes),
                "title": f"{name}, iteration {entry['iteration_id']}: "
                f"starts at {_format_ms(entry['start_ms'])}, " + ", ".join(notes),
            }
        )
    ticks = [
        {
            "x": round(LABEL_WIDTH + CHART_WIDTH * fraction, 1),
            "label": _format_ms(total_ms * fraction),
        }
        for fraction in (0, 0.25, 0.5, 0.75, 1)
    ]
    return {
        "width": LABEL_WIDTH + CHART_WIDTH + 120,
        "height": AXIS_HEIGHT + len(entries) * ROW_HEIGHT + 8,
        "axis_y": AXIS_HEIGHT - 10,
        "chart_left": LABEL_WIDTH,
        "chart_bottom": AXIS_HEIGHT + len(entries) * ROW_HEIGHT,
        "bars": bars,
        "ticks": ticks,
        "total": _format_ms(total_ms),
    }
