"""The analysis commands over real stores: leaderboard, runs, run-info, export."""

import json
import re
import tracemalloc

import pytest
from click.testing import CliRunner

from recorder import queries
from recorder.cli import cli
from recorder.evaluation_store import EvaluationStore
from recorder.reports import display_width


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Tables get 200 columns unless a test narrows them."""
    monkeypatch.setenv("COLUMNS", "200")


def invoke(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def table_rows(stdout):
    """The cells of a box table's header and data lines, stripped."""
    return [
        [cell.strip() for cell in line.strip("║").split("│")]
        for line in stdout.splitlines()
        if line.startswith("║ ") and "│" in line
    ]


def add_run(
    store,
    consortium_id,
    *,
    started_at,
    evaluations,
    status="completed",
    prompt="A question",
    synthesis="An answer",
    final_confidence=None,
):
    """A run written through the store's own methods, with chosen timestamps.

    ``evaluations``: one ``(timestamp, confidence, members)`` per iteration,
    or ``(timestamp, confidence, members, decision)`` to add decision keys.
    """
    store.start_run(
        consortium_id=consortium_id,
        trace_id=None,
        prompt=prompt,
        models=[{"model": "alpha", "count": 2}, {"model": "beta", "count": 1}],
        arbiter="judge",
        judging_method="default",
        confidence_threshold=0.8,
        min_iterations=1,
        max_iterations=3,
        started_at=started_at,
    )
    confidence = None
    for iteration_id, (timestamp, confidence, members, *extra) in enumerate(
        evaluations, start=1
    ):
        decision = {
            "confidence": confidence,
            "synthesis": synthesis,
            "analysis": f"Analysis {iteration_id}",
            "ranking": [m["label"] for m in members if m.get("rank")],
        }
        decision.update(*extra)
        store.store_evaluation(
            consortium_id,
            iteration_id,
            prompt,
            "judge",
            members,
            decision,
            timestamp=timestamp,
        )
    if status != "running":
        store.finish_run(
            consortium_id,
            status=status,
            iteration_count=len(evaluations),
            final_confidence=final_confidence
            if final_confidence is not None
            else confidence,
            synthesis=synthesis if status == "completed" else None,
            error=None if status == "completed" else "It went wrong",
            finished_at=started_at,
            duration_ms=1500,
            input_tokens=10,
            output_tokens=20,
        )


def member(model, instance=1, *, label, rank=None, tokens=None, ms=None, error=None):
    return {
        "model": model,
        "instance": instance,
        "label": label,
        "rank": rank,
        "tokens": tokens,
        "duration_ms": ms,
        "error": error,
    }


@pytest.fixture
def scored_store(db_path):
    """Three evaluations whose leaderboard is worked out by hand in the tests.

    1 (2025-11-01 10:00, confidence 0.8): alpha#1 first (100 tokens, 100 ms),
      alpha#2 second (200, 300), beta third (50, 200).
    2 (2025-11-02 00:00, confidence 0.6): beta first (150, 100), alpha second
      (100, 500), gamma failed (50 ms, no rank).
    """
    with EvaluationStore(db_path) as store:
        add_run(
            store,
            "cons-1000000000000001",
            started_at="2025-11-01T10:00:00.000+00:00",
            evaluations=[
                (
                    "2025-11-01T10:00:00.000+00:00",
                    0.8,
                    [
                        member("alpha", 1, label="A", rank=1, tokens=100, ms=100),
                        member("alpha", 2, label="B", rank=2, tokens=200, ms=300),
                        member("beta", 1, label="C", rank=3, tokens=50, ms=200),
                    ],
                )
            ],
        )
        add_run(
            store,
            "cons-2000000000000002",
            started_at="2025-11-02T00:00:00.000+00:00",
            evaluations=[
                (
                    "2025-11-02T00:00:00.000+00:00",
                    0.6,
                    [
                        member("beta", label="A", rank=1, tokens=150, ms=100),
                        member("alpha", label="B", rank=2, tokens=100, ms=500),
                        member("gamma", label="C", ms=50, error="boom"),
                    ],
                )
            ],
        )
    return db_path


ALPHA = {
    "model": "alpha",
    "evaluations": 3,
    "avg_confidence": 0.733,
    "avg_tokens": 133.3,
    "chosen_rate": 0.333,
    "avg_normalized_rank": 0.5,
    "avg_duration_ms": 300.0,
    "p95_duration_ms": 500.0,
    "error_rate": 0.0,
}
BETA = {
    "model": "beta",
    "evaluations": 2,
    "avg_confidence": 0.7,
    "avg_tokens": 100.0,
    "chosen_rate": 0.5,
    "avg_normalized_rank": 0.5,
    "avg_duration_ms": 150.0,
    "p95_duration_ms": 200.0,
    "error_rate": 0.0,
}
GAMMA = {
    "model": "gamma",
    "evaluations": 1,
    "avg_confidence": None,
    "avg_tokens": None,
    "chosen_rate": None,
    "avg_normalized_rank": None,
    "avg_duration_ms": 50.0,
    "p95_duration_ms": 50.0,
    "error_rate": 1.0,
}


# leaderboard --------------------------------------------------------------------


def test_leaderboard_json_matches_hand_computed_figures(scored_store):
    result = invoke("leaderboard", "--json", "--db", str(scored_store))
    assert result.exit_code == 0, result.output
    # Best chosen_rate first; a model that was never judged comes last.
    assert json.loads(result.stdout) == [BETA, ALPHA, GAMMA]
    assert result.stderr == ""


def test_store_method_returns_the_same_dicts(scored_store):
    with EvaluationStore(scored_store) as store:
        entries = store.get_leaderboard(limit=10, since=None)
    assert entries == [BETA, ALPHA, GAMMA]
    assert entries[0]["model"] == "beta" and entries[0]["avg_confidence"] == 0.7


def test_leaderboard_table_draws_the_spec_box(scored_store):
    result = invoke("leaderboard", "--db", str(scored_store))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("╔") and lines[0].endswith("╗")
    assert "MODEL PERFORMANCE LEADERBOARD" in lines[1]
    assert lines[4].startswith("╠") and "╪" in lines[4]
    assert lines[-1].startswith("╚") and "╧" in lines[-1]
    assert len({display_width(line) for line in lines}) == 1
    assert table_rows(result.stdout) == [
        [
            "Model",
            "Evaluations",
            "Avg Confidence",
            "Avg Tokens",
            "Chosen",
            "Avg Rank",
            "Avg ms",
            "p95 ms",
            "Errors",
        ],
        ["beta", "2", "0.700", "100", "50.0%", "0.500", "150", "200", "0.0%"],
        ["alpha", "3", "0.733", "133", "33.3%", "0.500", "300", "500", "0.0%"],
        ["gamma", "1", "-", "-", "-", "-", "50", "50", "100.0%"],
    ]


@pytest.mark.parametrize(
    "since, models",
    [
        ("2025-11-02", ["beta", "alpha", "gamma"]),
        ("2025-11-02T00:00:00", ["beta", "alpha", "gamma"]),
        ("2025-11-02T01:00:00+01:00", ["beta", "alpha", "gamma"]),
        ("2025-11-01T23:59:59.999Z", ["beta", "alpha", "gamma"]),
        ("2025-11-02T00:00:00.001", []),
        ("2025-11-01T10:00:00Z", ["beta", "alpha", "gamma"]),
        ("2025-11-01", ["beta", "alpha", "gamma"]),
    ],
)
def test_leaderboard_since_boundaries(scored_store, since, models):
    result = invoke(
        "leaderboard", "--json", "--since", since, "--db", str(scored_store)
    )
    assert result.exit_code == 0, result.output
    assert [entry["model"] for entry in json.loads(result.stdout)] == models


def test_leaderboard_since_counts_only_later_evaluations(scored_store):
    result = invoke(
        "leaderboard", "--json", "--since", "2025-11-02", "--db", str(scored_store)
    )
    alpha = next(e for e in json.loads(result.stdout) if e["model"] == "alpha")
    assert alpha["evaluations"] == 1
    assert alpha["avg_confidence"] == 0.6
    assert alpha["chosen_rate"] == 0.0
    assert alpha["avg_normalized_rank"] == 1.0


def test_leaderboard_model_filter_sort_and_limit(scored_store):
    db = ["--db", str(scored_store)]
    result = invoke(
        "leaderboard", "--json", "--model", "gamma", "--model", "alpha", *db
    )
    assert [e["model"] for e in json.loads(result.stdout)] == ["alpha", "gamma"]

    result = invoke("leaderboard", "--json", "--sort", "avg_duration_ms", *db)
    assert [e["model"] for e in json.loads(result.stdout)] == ["gamma", "beta", "alpha"]

    result = invoke("leaderboard", "--json", "--sort", "avg_confidence", *db)
    assert [e["model"] for e in json.loads(result.stdout)] == ["alpha", "beta", "gamma"]

    result = invoke("leaderboard", "--json", "--limit", "1", *db)
    assert json.loads(result.stdout) == [BETA]

    result = invoke("leaderboard", "--sort", "nonsense", *db)
    assert result.exit_code == 2
    assert "nonsense" in result.stderr


def test_leaderboard_ties_fall_back_to_confidence_then_name(db_path):
    with EvaluationStore(db_path) as store:
        for number, (confidence, first, second) in enumerate(
            [(0.9, "zeta", "eta"), (0.9, "eta", "zeta"), (0.5, "theta", "iota")]
        ):
            add_run(
                store,
                f"cons-{number:016x}",
                started_at=f"2025-11-0{number + 1}T00:00:00.000+00:00",
                evaluations=[
                    (
                        f"2025-11-0{number + 1}T00:00:00.000+00:00",
                        confidence,
                        [
                            member(first, label="A", rank=1, tokens=10, ms=10),
                            member(second, label="B", rank=2, tokens=10, ms=10),
                        ],
                    )
                ],
            )
    result = invoke("leaderboard", "--json", "--db", str(db_path))
    entries = json.loads(result.stdout)
    # eta and zeta tie on chosen_rate and avg_confidence: by name. theta has
    # chosen_rate 1.0 and leads; iota has 0.0 and trails.
    assert [(e["model"], e["chosen_rate"]) for e in entries] == [
        ("theta", 1.0),
        ("eta", 0.5),
        ("zeta", 0.5),
        ("iota", 0.0),
    ]


@pytest.mark.parametrize("width", [70, 50])
def test_leaderboard_fits_a_narrow_terminal(scored_store, monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))
    result = invoke("leaderboard", "--db", str(scored_store))
    assert result.exit_code == 0, result.output
    assert all(display_width(line) <= width for line in result.stdout.splitlines())
    headers = table_rows(result.stdout)[0]
    assert headers[:2] == ["Model", "Evaluations"]
    assert "Chosen" in headers
    hidden = "Avg Rank, Avg ms, p95 ms, Errors"
    if width == 50:
        hidden = "Avg Tokens, " + hidden
    assert result.stderr == (
        f"Hidden to fit {width} columns: {hidden} "
        "(widen the terminal, set COLUMNS, or use --json).\n"
    )
    if width == 70:
        assert headers == [
            "Model",
            "Evaluations",
            "Avg Confidence",
            "Avg Tokens",
            "Chosen",
        ]


def test_the_sort_column_is_never_hidden(scored_store, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    result = invoke(
        "leaderboard", "--sort", "p95_duration_ms", "--db", str(scored_store)
    )
    assert "p95 ms" in table_rows(result.stdout)[0]
    assert "(by p95_duration_ms)" in result.stdout


def test_a_pipe_without_columns_keeps_every_column(scored_store, monkeypatch):
    monkeypatch.delenv("COLUMNS")
    result = invoke("leaderboard", "--db", str(scored_store))
    assert result.exit_code == 0
    assert "Hidden" not in result.stderr
    assert "p95 ms" in result.stdout and "Errors" in result.stdout


def test_wide_characters_keep_the_box_aligned(db_path):
    with EvaluationStore(db_path) as store:
        add_run(
            store,
            "cons-3000000000000003",
            started_at="2025-11-03T00:00:00.000+00:00",
            evaluations=[
                (
                    "2025-11-03T00:00:00.000+00:00",
                    0.9,
                    [
                        member("模型-一", label="A", rank=1, tokens=1, ms=1),
                        member("m", label="B", rank=2, tokens=1, ms=1),
                    ],
                )
            ],
        )
    result = invoke("leaderboard", "--db", str(db_path))
    assert len({display_width(line) for line in result.stdout.splitlines()}) == 1


def test_leaderboard_over_real_consortium_runs(db_path):
    db = ["--db", str(db_path)]
    for prompt in ("First question", "Second question"):
        result = invoke(
            "run",
            "-m",
            "scripted-member:2",
            "-m",
            "scripted-fail",
            "-m",
            "llama3:8b",
            "--arbiter",
            "scripted-arbiter",
            *db,
            prompt,
        )
        assert result.exit_code == 0, result.output

    result = invoke("leaderboard", "--json", *db)
    entries = {entry["model"]: entry for entry in json.loads(result.stdout)}
    assert list(entries) == ["scripted-member", "llama3:8b", "scripted-fail"]
    # Two instances in each of two runs: four answers, two of them ranked first
    # (label A), and normalized ranks 0.0 and 0.5 in each run.
    member_entry = entries["scripted-member"]
    assert member_entry["evaluations"] == 4
    assert member_entry["chosen_rate"] == 0.5
    assert member_entry["avg_normalized_rank"] == 0.25
    assert member_entry["avg_confidence"] == 0.9
    assert member_entry["error_rate"] == 0.0
    assert entries["llama3:8b"]["evaluations"] == 2
    assert entries["llama3:8b"]["avg_normalized_rank"] == 1.0
    assert entries["scripted-fail"]["error_rate"] == 1.0
    assert entries["scripted-fail"]["chosen_rate"] is None


# runs -----------------------------------------------------------------------------


def test_runs_lists_newest_first_with_status_filter(scored_store):
    with EvaluationStore(scored_store) as store:
        add_run(
            store,
            "cons-3000000000000003",
            started_at="2025-11-03T00:00:00.000+00:00",
            status="failed",
            evaluations=[],
        )
    db = ["--db", str(scored_store)]
    result = invoke("runs", "--json", *db)
    runs = json.loads(result.stdout)
    assert [run["consortium_id"] for run in runs] == [
        "cons-3000000000000003",
        "cons-2000000000000002",
        "cons-1000000000000001",
    ]
    assert runs[1]["models"] == [
        {"model": "alpha", "count": 2},
        {"model": "beta", "count": 1},
    ]
    assert runs[1]["final_confidence"] == 0.6
    assert runs[1]["total_tokens"] == 30

    result = invoke("runs", "--json", "--status", "failed", *db)
    assert [run["status"] for run in json.loads(result.stdout)] == ["failed"]

    result = invoke("runs", "--limit", "2", *db)
    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout) == [
        [
            "Consortium ID",
            "Started (UTC)",
            "Models",
            "Iter",
            "Conf",
            "Status",
            "Tokens",
            "Duration",
        ],
        [
            "cons-3000000000000003",
            "2025-11-03 00:00",
            "alpha ×2, beta",
            "0",
            "-",
            "failed",
            "30",
            "1.5 s",
        ],
        [
            "cons-2000000000000002",
            "2025-11-02 00:00",
            "alpha ×2, beta",
            "1",
            "0.600",
            "completed",
            "30",
            "1.5 s",
        ],
    ]


def test_runs_from_real_consortiums(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member:2",
        "-m",
        "scripted-no-usage",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Why?",
    )
    assert result.exit_code == 0, result.output
    result = invoke("runs", "--db", str(db_path))
    header, row = table_rows(result.stdout)
    assert row[0].startswith("cons-") and len(row[0]) == 21
    assert row[2] == "scripted-member ×2, scripted-no-usage"
    assert row[3:6] == ["1", "0.900", "completed"]


def test_runs_shows_interrupted_for_a_dead_recorder(db_path):
    with EvaluationStore(db_path) as store:
        add_run(
            store,
            "cons-4000000000000004",
            started_at="2025-11-04T00:00:00.000+00:00",
            status="running",
            evaluations=[],
        )
        # A process ID that cannot be alive.
        store.conn.execute("update runs set process_id = 2147483647")
    result = invoke("runs", "--json", "--db", str(db_path))
    (run,) = json.loads(result.stdout)
    assert run["status"] == "interrupted"


# run-info -----------------------------------------------------------------------


def test_run_info_tree_of_a_real_two_iteration_run(db_path, add_scripted_model):
    add_scripted_model("doubtful-arbiter", arbiter=True, confidences=[0.5, 0.9])
    result = invoke(
        "run",
        "-m",
        "scripted-member:2",
        "-m",
        "scripted-fail",
        "-m",
        "llama3:8b",
        "--arbiter",
        "doubtful-arbiter",
        "--db",
        str(db_path),
        "Why is the sky blue?",
    )
    assert result.exit_code == 0, result.output
    (run,) = json.loads(invoke("runs", "--json", "--db", str(db_path)).stdout)
    consortium_id = run["consortium_id"]

    result = invoke("run-info", consortium_id[:12], "--db", str(db_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"Run {consortium_id} · completed · final confidence 0.900"
    assert lines[1] == "├── Prompt: Why is the sky blue?"
    assert "2 iterations" in lines[2]
    assert lines[3] == (
        "├── Models: scripted-member ×2, scripted-fail, llama3:8b"
        " · arbiter doubtful-arbiter · default judging"
    )
    first = lines.index("├── Iteration 1")
    second = lines.index("└── Iteration 2")
    iteration_one = lines[first + 1 : second]
    assert iteration_one[0].startswith("│   ├── Member A: scripted-member #1 · ")
    assert iteration_one[0].endswith(' · "An answer to: Why is the sky blue?"')
    assert iteration_one[1].startswith("│   ├── Member B: scripted-member #2 · ")
    assert iteration_one[2].startswith("│   ├── Member C: scripted-fail #1 · ")
    assert "error: " in iteration_one[2]
    assert "The provider refused the request" in iteration_one[2]
    assert iteration_one[3].startswith("│   ├── Member D: llama3:8b #1 · ")
    assert iteration_one[4].startswith("│   ├── Arbiter call: doubtful-arbiter · ")
    assert iteration_one[5] == (
        "│   └── Decision: confidence 0.500 · needs iteration: yes · default judging"
    )
    assert iteration_one[6:] == [
        "│       ├── Refinement areas: Be more specific",
        "│       ├── Ranking: 1. scripted-member #1 (A, chosen), "
        "2. scripted-member #2 (B), 3. llama3:8b #1 (D)",
        "│       ├── Synthesis: A synthesis of 3 answers",
        "│       ├── Analysis: The answers agree on the main points.",
        "│       └── Dissent: None.",
    ]
    assert (
        "    └── Decision: confidence 0.900 · needs iteration: no · default judging"
        in lines[second:]
    )
    assert lines[-2:] == ["Final synthesis:", "A synthesis of 3 answers"]

    result = invoke("run-info", consortium_id, "--json", "--db", str(db_path))
    tree = json.loads(result.stdout)
    assert tree["run"]["consortium_id"] == consortium_id
    assert [i["iteration_id"] for i in tree["iterations"]] == [1, 2]
    ranked = tree["iterations"][1]["evaluation"]["ranked_models"]
    assert [(r["rank"], r["model"], r["instance"], r["chosen"]) for r in ranked] == [
        (1, "scripted-member", 1, True),
        (2, "scripted-member", 2, False),
        (3, "llama3:8b", 1, False),
    ]


def test_run_info_of_a_failed_run(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-fail:2",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Hello",
    )
    assert result.exit_code == 1
    result = invoke("run-info", "cons-", "--db", str(db_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(" · failed · final confidence -")
    assert lines[4].startswith("├── Error: Every member failed in iteration 1: ")
    assert lines[5] == "└── Iteration 1"
    for line, label, instance in ((lines[6], "A", 1), (lines[7], "B", 2)):
        assert re.fullmatch(
            rf"    [├└]── Member {label}: scripted-fail #{instance} · tokens not "
            r"reported · [0-9.]+ ms · error: ScriptedError: The provider refused "
            r"the request",
            line,
        )
    assert len(lines) == 8


def test_run_info_unknown_and_ambiguous_ids(scored_store):
    db = ["--db", str(scored_store)]
    result = invoke("run-info", "cons-9", *db)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: No run has the ID 'cons-9'; 'consortium-record runs' lists "
        "recent ones.\n"
    )
    result = invoke("run-info", "cons-", *db)
    assert result.exit_code == 1
    assert "starts more than one run ID" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    result = invoke("run-info", "cons-2", "--json", *db)
    assert json.loads(result.stdout)["run"]["consortium_id"] == "cons-2000000000000002"


def test_untrusted_text_is_escaped_in_tables_and_trees(db_path, add_scripted_model):
    add_scripted_model("hostile", reply="\x1b]0;pwned\x07\x1b[31mred\u202e")
    add_scripted_model("broken", fail="bad \x1b[2J news")
    result = invoke(
        "run",
        "-m",
        "hostile",
        "-m",
        "broken",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Say \x1b[1mthis\x1b[0m",
    )
    assert result.exit_code == 0, result.output
    for command in (["runs"], ["run-info", "cons-"]):
        result = invoke(*command, "--db", str(db_path))
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert "\u202e" not in result.stdout
    assert '"\\x1b]0;pwned\\x07\\x1b[31mred\\u202e"' in result.stdout
    assert "bad \\x1b[2J news" in result.stdout
    assert "Prompt: Say \\x1b[1mthis\\x1b[0m" in result.stdout

    result = invoke("run-info", "cons-", "--json", "--db", str(db_path))
    assert "\x1b" not in result.stdout
    calls = json.loads(result.stdout)["iterations"][0]["model_calls"]
    assert calls[0]["response"] == "\x1b]0;pwned\x07\x1b[31mred\u202e"


# export-training ------------------------------------------------------------------


@pytest.fixture
def training_store(db_path):
    with EvaluationStore(db_path) as store:
        add_run(
            store,
            "cons-1000000000000001",
            started_at="2025-11-01T10:00:00.000+00:00",
            prompt="Explain superposition",
            synthesis='Line one\nLine two ✓ "quoted"',
            evaluations=[
                (
                    "2025-11-01T10:00:01.000+00:00",
                    0.5,
                    [
                        member("alpha", label="A", rank=1),
                        member("beta", label="B", rank=2),
                    ],
                ),
                (
                    "2025-11-01T10:00:02.000+00:00",
                    0.92,
                    [
                        member("alpha", label="A", rank=2),
                        member("beta", label="B", rank=1),
                        member("gamma", label="C", error="timeout"),
                    ],
                ),
            ],
        )
        add_run(
            store,
            "cons-2000000000000002",
            started_at="2025-11-02T00:00:00.000+00:00",
            prompt="Reverse a list",
            synthesis="xs[::-1]",
            evaluations=[
                (
                    "2025-11-02T00:00:01.000+00:00",
                    0.8,
                    [member("k2", label="A", rank=1)],
                )
            ],
        )
        add_run(
            store,
            "cons-3000000000000003",
            started_at="2025-11-03T00:00:00.000+00:00",
            status="failed",
            evaluations=[
                ("2025-11-03T00:00:01.000+00:00", 0.99, [member("k2", label="A")])
            ],
        )
        add_run(
            store,
            "cons-4000000000000004",
            started_at="2025-11-04T00:00:00.000+00:00",
            status="running",
            evaluations=[
                ("2025-11-04T00:00:01.000+00:00", 0.99, [member("k2", label="A")])
            ],
        )
    return db_path


FIRST_LINE = (
    b'{"prompt": "Explain superposition", "chosen": "Line one\\nLine two '
    b'\xe2\x9c\x93 \\"quoted\\"", "analysis": "Analysis 2", "models_evaluated": '
    b'["alpha", "beta"], "arbiter_confidence": 0.92}\n'
)
SECOND_LINE = (
    b'{"prompt": "Reverse a list", "chosen": "xs[::-1]", "analysis": "Analysis 1", '
    b'"models_evaluated": ["k2"], "arbiter_confidence": 0.8}\n'
)


def test_export_training_writes_the_spec_lines_byte_for_byte(training_store, tmp_path):
    output = tmp_path / "training.jsonl"
    result = invoke("export-training", str(output), "--db", str(training_store))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"Wrote 2 training examples to {output}.\n"
    assert output.read_bytes() == FIRST_LINE + SECOND_LINE
    assert list(tmp_path.glob("*.partial")) == []


def test_export_training_to_stdout_with_filters(training_store):
    db = ["--db", str(training_store)]
    result = invoke("export-training", "-", *db)
    assert result.stdout_bytes == FIRST_LINE + SECOND_LINE
    assert result.stderr == "Wrote 2 training examples to stdout.\n"

    result = invoke("export-training", "-", "--since", "2025-11-01T10:00:00.001", *db)
    assert result.stdout_bytes == SECOND_LINE

    result = invoke("export-training", "-", "--since", "2025-11-01T11:00:00+01:00", *db)
    assert result.stdout_bytes == FIRST_LINE + SECOND_LINE

    result = invoke("export-training", "-", "--min-confidence", "0.92", *db)
    assert result.stdout_bytes == FIRST_LINE
    assert result.stderr == "Wrote 1 training example to stdout.\n"

    result = invoke("export-training", "-", "--min-confidence", "0.95", *db)
    assert result.stdout_bytes == b""
    assert result.stderr.startswith("Wrote 0 training examples to stdout: ")


def test_export_training_to_an_unwritable_place(training_store, tmp_path):
    output = tmp_path / "missing-folder" / "out.jsonl"
    result = invoke("export-training", str(output), "--db", str(training_store))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Cannot write {output}: No such file or directory.\n"
    )


def test_export_training_replaces_a_file_only_when_done(training_store, tmp_path):
    output = tmp_path / "out.jsonl"
    output.write_text("old\n")
    result = invoke(
        "export-training",
        str(output),
        "--since",
        "nonsense",
        "--db",
        str(training_store),
    )
    assert result.exit_code == 2
    assert output.read_text() == "old\n"
    result = invoke("export-training", str(output), "--db", str(training_store))
    assert output.read_bytes() == FIRST_LINE + SECOND_LINE


def test_export_training_matches_the_store_and_the_shared_sql(training_store):
    result = invoke("export-training", "-", "--db", str(training_store))
    with EvaluationStore(training_store) as store:
        examples = list(store.iter_training_examples())
        rows = store.query(
            queries.TRAINING_EXPORT_SQL, {"since": None, "min_confidence": None}
        )
    assert [json.loads(line) for line in result.stdout.splitlines()] == examples
    assert "".join(queries.training_line(row) + "\n" for row in rows) == result.stdout
    assert all(
        list(example) == list(queries.TRAINING_EXAMPLE_KEYS) for example in examples
    )


def test_export_training_from_a_real_run(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "-m",
        "scripted-fail",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Name a colour",
    )
    assert result.exit_code == 0, result.output
    result = invoke("export-training", "-", "--db", str(db_path))
    assert result.stdout == (
        '{"prompt": "Name a colour", "chosen": "A synthesis of 1 answers", '
        '"analysis": "The answers agree on the main points.", '
        '"models_evaluated": ["scripted-member"], "arbiter_confidence": 0.9}\n'
    )


def test_export_training_streams(db_path):
    """Python memory stays flat however many rows are exported."""
    with EvaluationStore(db_path) as store, store.batch():
        for number in range(3000):
            add_run(
                store,
                f"cons-{number:016x}",
                started_at="2025-11-01T00:00:00.000+00:00",
                prompt="x" * 1000,
                evaluations=[
                    (
                        "2025-11-01T00:00:00.000+00:00",
                        0.9,
                        [member("alpha", label="A", rank=1)],
                    )
                ],
            )
    output = db_path.parent / "big.jsonl"
    tracemalloc.start()
    try:
        result = invoke("export-training", str(output), "--db", str(db_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert output.stat().st_size > 3_000_000
    # Holding the rows would take at least the 3 MB they are on disk; the
    # export holds one batch of them at a time.
    assert peak < output.stat().st_size / 2


# The store, empty, missing or broken -----------------------------------------


@pytest.fixture
def empty_store(db_path):
    EvaluationStore(db_path).close()
    return db_path


@pytest.mark.parametrize(
    "command, message",
    [
        (["leaderboard"], "No evaluations in the store yet: record a run with "),
        (["runs"], "No runs in the store yet: record one with "),
        (["runs", "--status", "failed"], "No runs with status failed in the store."),
        (
            ["leaderboard", "--since", "2025-11-01", "--model", "k2"],
            "No evaluations for k2 since 2025-11-01T00:00:00.000+00:00 in the store.",
        ),
    ],
)
def test_empty_store_says_so(empty_store, command, message):
    result = invoke(*command, "--db", str(empty_store))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1
    result = invoke(*command, "--json", "--db", str(empty_store))
    assert result.stdout == "[]\n"
    assert result.stderr.startswith(message)


def test_empty_store_export_and_run_info(empty_store, tmp_path):
    output = tmp_path / "out.jsonl"
    result = invoke("export-training", str(output), "--db", str(empty_store))
    assert result.exit_code == 0
    assert result.stderr == (
        f"Wrote 0 training examples to {output}: no completed runs in the store.\n"
    )
    assert output.read_bytes() == b""
    result = invoke("run-info", "cons-1", "--db", str(empty_store))
    assert result.exit_code == 1
    assert "No run has the ID 'cons-1'" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["leaderboard"],
        ["runs"],
        ["run-info", "cons-1"],
        ["export-training", "OUT"],
    ],
)
def test_missing_store_is_not_created(tmp_path, command):
    missing = tmp_path / "nowhere" / "evaluations.db"
    output = tmp_path / "out.jsonl"
    command = [str(output) if part == "OUT" else part for part in command]
    result = invoke(*command, "--db", str(missing))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: There is no store at {missing} yet: record a run with "
        "'consortium-record run', or point --db at an evaluations.db.\n"
    )
    assert not missing.parent.exists()
    assert not output.exists()


def test_missing_store_from_the_environment(tmp_path, monkeypatch):
    missing = tmp_path / "env.db"
    monkeypatch.setenv("LLM_CONSORTIUM_DB", str(missing))
    result = invoke("runs")
    assert result.exit_code == 1
    assert str(missing) in result.stderr
    assert not missing.exists()


@pytest.mark.parametrize(
    "command", [["leaderboard"], ["runs"], ["run-info", "x"], ["export-training", "-"]]
)
def test_corrupt_store_is_one_line_and_left_untouched(tmp_path, command):
    corrupt = tmp_path / "corrupt.db"
    content = b"this is not a database " * 200
    corrupt.write_bytes(content)
    result = invoke(*command, "--db", str(corrupt))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {corrupt} is not a SQLite database (or it is corrupt); "
        "it was left untouched.\n"
    )
    assert corrupt.read_bytes() == content


@pytest.mark.parametrize(
    "command",
    [["leaderboard"], ["export-training", "-"]],
)
@pytest.mark.parametrize("since", ["yesterday", "2025-13-01", "11/01/2025", ""])
def test_bad_since_is_a_clear_error(empty_store, command, since):
    result = invoke(*command, "--since", since, "--db", str(empty_store))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert (
        f"Invalid value for '--since': {since!r} is not an ISO 8601 date"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_every_option_has_help():
    for name in ("leaderboard", "runs", "run-info", "export-training"):
        command = cli.commands[name]
        for parameter in command.params:
            if parameter.param_type_name == "option":
                assert parameter.help, f"{name} {parameter.name}"


# normalize_since -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2025-11-01", "2025-11-01T00:00:00.000+00:00"),
        ("2025-11-01T12:00:00", "2025-11-01T12:00:00.000+00:00"),
        ("2025-11-01T12:00:00Z", "2025-11-01T12:00:00.000+00:00"),
        ("2025-11-01T12:00:00z", "2025-11-01T12:00:00.000+00:00"),
        ("2025-11-01T14:30:00+02:30", "2025-11-01T12:00:00.000+00:00"),
        ("2025-11-01T00:30:00-01:00", "2025-11-01T01:30:00.000+00:00"),
        ("2025-11-01 12:00", "2025-11-01T12:00:00.000+00:00"),
        ("2025-11-01T12:00:00.25", "2025-11-01T12:00:00.250+00:00"),
        ("2025-11-01T12:00:00.000001", "2025-11-01T12:00:00.001+00:00"),
        (" 2025-11-01 ", "2025-11-01T00:00:00.000+00:00"),
    ],
)
def test_normalize_since(text, expected):
    assert queries.normalize_since(text) == expected


def test_normalized_since_compares_with_stored_timestamps():
    stored = "2025-11-01T12:00:00.000+00:00"
    assert stored >= queries.normalize_since("2025-11-01T12:00:00Z")
    assert stored >= queries.normalize_since("2025-11-01")
    assert stored < queries.normalize_since("2025-11-01T12:00:00.0001")


def test_an_empty_file_is_no_store_and_stays_empty(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    result = invoke("runs", "--db", str(empty))
    assert result.exit_code == 1
    assert "There is no store at" in result.stderr
    assert empty.read_bytes() == b""
