import hashlib
import json
from datetime import datetime

import pytest
from click.testing import CliRunner
from reliability_support import rows

from recorder.cli import cli


def invoke(*args, input=None):
    runner = CliRunner()
    return runner.invoke(cli, list(args), input=input, catch_exceptions=False)


def log_lines(tmp_path):
    path = tmp_path / "consortium.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_records_every_call(db_path):
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
        "Why is the sky blue?",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "A synthesis of 3 answers\n"

    (run,) = rows(db_path, "select * from runs")
    assert run["status"] == "completed"
    assert run["consortium_id"].startswith("cons-") and len(run["consortium_id"]) == 21
    assert len(run["trace_id"]) == 32
    assert json.loads(run["models"]) == [
        {"model": "scripted-member", "count": 2},
        {"model": "scripted-no-usage", "count": 1},
    ]
    assert run["final_confidence"] == 0.9
    assert run["iteration_count"] == 1
    assert run["finished_at"] >= run["started_at"]

    calls = rows(db_path, "select * from model_calls order by role desc, label")
    assert [(c["role"], c["model"], c["instance"], c["label"]) for c in calls] == [
        ("member", "scripted-member", 1, "A"),
        ("member", "scripted-member", 2, "B"),
        ("member", "scripted-no-usage", 1, "C"),
        ("arbiter", "scripted-arbiter", None, None),
    ]
    for call in calls:
        assert call["request_id"].startswith("req-") and len(call["request_id"]) == 16
        assert call["consortium_id"] == run["consortium_id"]
        assert call["iteration_id"] == 1
        assert call["duration_ms"] >= 0
        datetime.fromisoformat(call["started_at"])
    assert calls[0]["input_tokens"] == 5 and calls[0]["output_tokens"] == 8
    # A model that reports no usage has no token counts, not a guess.
    assert calls[2]["input_tokens"] is None and calls[2]["output_tokens"] is None
    assert run["input_tokens"] == sum(c["input_tokens"] or 0 for c in calls)

    (evaluation,) = rows(db_path, "select * from evaluations")
    assert evaluation["request_id"] == calls[3]["request_id"]
    assert evaluation["confidence"] == 0.9
    assert json.loads(evaluation["ranking"]) == ["A", "B", "C"]
    assert json.loads(evaluation["evaluated_models"]) == [
        "scripted-member",
        "scripted-member",
        "scripted-no-usage",
    ]
    performance = rows(db_path, "select * from model_performance order by rank")
    assert [
        (p["model"], p["instance"], p["rank"], p["chosen"]) for p in performance
    ] == [
        ("scripted-member", 1, 1, 1),
        ("scripted-member", 2, 2, 0),
        ("scripted-no-usage", 1, 3, 0),
    ]
    assert [p["normalized_rank"] for p in performance] == [0.0, 0.5, 1.0]
    assert performance[0]["token_usage"] == 13
    assert performance[2]["token_usage"] is None


def test_arbiter_defaults_to_first_model(db_path):
    result = invoke("run", "-m", "scripted-arbiter", "--db", str(db_path), "Hi")
    assert result.exit_code == 0, result.output
    assert rows(db_path, "select arbiter from runs")[0]["arbiter"] == "scripted-arbiter"


def test_model_ids_with_colons_survive(db_path):
    result = invoke(
        "run",
        "-m",
        "llama3:8b",
        "-m",
        "openrouter/x:free:2",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Hello",
    )
    assert result.exit_code == 0, result.output
    calls = rows(
        db_path,
        "select model, instance, response from model_calls where role = 'member' "
        "order by label",
    )
    assert [(c["model"], c["instance"]) for c in calls] == [
        ("llama3:8b", 1),
        ("openrouter/x:free", 1),
        ("openrouter/x:free", 2),
    ]
    assert calls[1]["response"] == "openrouter says: Hello"


def test_members_run_in_parallel(db_path, add_scripted_model):
    add_scripted_model("slow-member", reply="slow", delay=0.3)
    result = invoke(
        "run",
        "-m",
        "slow-member:4",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Go",
    )
    assert result.exit_code == 0, result.output
    calls = rows(
        db_path,
        "select started_at, finished_at from model_calls where role = 'member'",
    )
    latest_start = max(datetime.fromisoformat(c["started_at"]) for c in calls)
    earliest_finish = min(datetime.fromisoformat(c["finished_at"]) for c in calls)
    # Every member had started before any of them finished: they overlapped.
    assert latest_start < earliest_finish


def test_worker_threads_carry_correlation_ids(db_path, tmp_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member:3",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Trace me",
    )
    assert result.exit_code == 0, result.output
    lines = log_lines(tmp_path)
    calls = {c["request_id"]: c for c in rows(db_path, "select * from model_calls")}
    model_call_lines = [line for line in lines if line["event_type"] == "model_call"]
    assert len(model_call_lines) == 4
    for line in model_call_lines:
        call = calls[line["request_id"]]
        assert line["consortium_id"] == call["consortium_id"]
        assert line["iteration_id"] == call["iteration_id"] == 1
        assert line["model_id"] == call["model"]
        assert line["name"] == "recorder.orchestrator"
        assert line["levelname"] == "INFO"
        for key in (
            "timestamp",
            "message",
            "duration_ms",
            "tokens",
            "prompt_preview",
            "response_preview",
        ):
            assert key in line
    events = [line["event_type"] for line in lines]
    assert events[0] == "consortium_start" and events[-1] == "consortium_end"
    for event in ("iteration_start", "arbiter_decision", "iteration_end"):
        assert event in events
    assert len({line["consortium_id"] for line in lines}) == 1


def test_iterates_until_confident(db_path, add_scripted_model):
    add_scripted_model("hesitant-arbiter", arbiter=True, confidences=[0.5, 0.95])
    result = invoke(
        "run",
        "-m",
        "scripted-member:2",
        "--arbiter",
        "hesitant-arbiter",
        "--db",
        str(db_path),
        "--json",
        "Think harder",
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["iteration_count"] == 2
    assert output["synthesis"]["confidence"] == 0.95
    second_prompts = rows(
        db_path,
        "select prompt from model_calls where iteration_id = 2 and role = 'member'",
    )
    assert "A synthesis of 2 answers" in second_prompts[0]["prompt"]
    assert "Be more specific" in second_prompts[0]["prompt"]
    assert rows(db_path, "select iteration_count from runs")[0]["iteration_count"] == 2


def test_stops_at_max_iterations_and_respects_min(db_path, add_scripted_model):
    add_scripted_model("unsure-arbiter", arbiter=True, confidence=0.3)
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "--arbiter",
        "unsure-arbiter",
        "--max-iterations",
        "2",
        "--db",
        str(db_path),
        "Hmm",
    )
    assert result.exit_code == 0
    assert rows(db_path, "select iteration_count from runs")[0]["iteration_count"] == 2
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "--arbiter",
        "scripted-arbiter",
        "--min-iterations",
        "3",
        "--max-iterations",
        "3",
        "--db",
        str(db_path),
        "Hmm",
    )
    assert result.exit_code == 0
    counts = rows(db_path, "select iteration_count from runs order by started_at")
    assert counts[1]["iteration_count"] == 3


def test_rank_method_returns_top_ranked_answer(db_path):
    result = invoke(
        "run",
        "-m",
        "llama3:8b",
        "-m",
        "scripted-member",
        "--arbiter",
        "scripted-arbiter",
        "--judging-method",
        "rank",
        "--db",
        str(db_path),
        "Pick",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "llama says: Pick\n"
    assert rows(db_path, "select synthesis from runs")[0]["synthesis"] == (
        "llama says: Pick"
    )


def test_schema_arbiter_is_asked_for_json(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member:2",
        "--arbiter",
        "scripted-schema-arbiter",
        "--db",
        str(db_path),
        "Structured please",
    )
    assert result.exit_code == 0, result.output
    (arbiter_call,) = rows(db_path, "select * from model_calls where role = 'arbiter'")
    assert json.loads(arbiter_call["response"])["confidence"] == 0.9
    assert rows(db_path, "select confidence from evaluations")[0]["confidence"] == 0.9


def test_failing_member_is_recorded_and_others_go_on(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "-m",
        "scripted-fail",
        "--arbiter",
        "scripted-arbiter",
        "--retries",
        "0",
        "--db",
        str(db_path),
        "Try",
    )
    assert result.exit_code == 0, result.output
    failed = rows(db_path, "select * from model_calls where model = 'scripted-fail'")
    assert failed[0]["status"] == "error"
    assert "The provider refused the request" in failed[0]["error"]
    performance = rows(db_path, "select * from model_performance order by label")
    assert performance[1]["error"] is not None and performance[1]["rank"] is None
    assert rows(db_path, "select status from runs")[0]["status"] == "completed"


def test_every_member_failing_fails_the_run(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-fail:2",
        "--arbiter",
        "scripted-arbiter",
        "--retries",
        "0",
        "--db",
        str(db_path),
        "Try",
    )
    assert result.exit_code == 1
    assert "failed" in result.stderr
    (run,) = rows(db_path, "select * from runs")
    assert run["status"] == "failed"
    assert run["error"].startswith("Every member failed in iteration 1")
    assert len(rows(db_path, "select * from model_calls")) == 2


def test_timeout_is_recorded(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "-m",
        "scripted-hang",
        "--arbiter",
        "scripted-arbiter",
        "--timeout",
        "0.3",
        "--db",
        str(db_path),
        "Wait",
    )
    assert result.exit_code == 0, result.output
    (hung,) = rows(db_path, "select * from model_calls where model = 'scripted-hang'")
    assert hung["status"] == "timeout"
    assert hung["error"] == "Timed out after 0.3 seconds"


def test_unparseable_arbiter_reply_fails_honestly(db_path, add_scripted_model):
    add_scripted_model("babbling-arbiter", reply="I like all of them!")
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "--arbiter",
        "babbling-arbiter",
        "--db",
        str(db_path),
        "Judge",
    )
    assert result.exit_code == 1
    (evaluation,) = rows(db_path, "select * from evaluations")
    assert evaluation["raw_response"] == "I like all of them!"
    assert evaluation["error"]
    (run,) = rows(db_path, "select * from runs")
    assert run["status"] == "failed" and run["synthesis"] is None


def test_prompts_from_stdin_with_concurrency(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "--arbiter",
        "scripted-arbiter",
        "--concurrency",
        "3",
        "--db",
        str(db_path),
        input="one\n\ntwo\nthree\nfour\nfive\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["A synthesis of 1 answers"] * 5
    prompts = {r["prompt"] for r in rows(db_path, "select prompt from runs")}
    assert prompts == {"one", "two", "three", "four", "five"}


def test_trace_prints_ids_and_log_lines_to_stderr(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "--arbiter",
        "scripted-arbiter",
        "--trace",
        "--db",
        str(db_path),
        "Trace",
    )
    assert result.exit_code == 0
    (run,) = rows(db_path, "select * from runs")
    stderr = result.stderr.splitlines()
    assert stderr[0] == f"Consortium ID: {run['consortium_id']}"
    assert stderr[1] == f"Trace ID: {run['trace_id']}"
    events = [json.loads(line)["event_type"] for line in stderr[2:]]
    assert "model_call" in events and "arbiter_decision" in events
    assert result.stdout == "A synthesis of 1 answers\n"


def test_log_level_from_environment(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_CONSORTIUM_LOG_LEVEL", "WARNING")
    invoke(
        "run",
        "-m",
        "scripted-member",
        "-m",
        "scripted-fail",
        "--retries",
        "0",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Quiet",
    )
    events = {line["event_type"] for line in log_lines(tmp_path)}
    assert events == {"model_error"}


@pytest.mark.parametrize(
    "arguments,message",
    [
        (
            ["-m", "no-such-model", "Hi"],
            "Unknown model: no-such-model. Run 'llm models'",
        ),
        (["-m", "scripted-member:0", "Hi"], "Instance count must be at least 1"),
        (["-m", "scripted-member:-2", "Hi"], "Instance count must be at least 1"),
        (["-m", "scripted-member", "--arbiter", "nope", "Hi"], "Unknown model: nope"),
        (["-m", "scripted-member", "--confidence-threshold", "1.5", "Hi"], "1.5"),
        (["-m", "scripted-member", "--confidence-threshold", "high", "Hi"], "high"),
        (
            ["-m", "scripted-member", "--min-iterations", "4", "Hi"],
            "--min-iterations (4) cannot be more than --max-iterations (3)",
        ),
        (["-m", "scripted-member", "--timeout", "0", "Hi"], "--timeout"),
        (["-m", "scripted-member", "--judging-method", "vote", "Hi"], "vote"),
        (["-m", "scripted-member", "   "], "The prompt is empty."),
        (["-m", "", "Hi"], "A model name cannot be empty."),
    ],
)
def test_bad_input_is_one_clear_line(arguments, message, db_path):
    db_path.write_bytes(b"")
    result = invoke("run", "--db", str(db_path), *arguments)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert db_path.read_bytes() == b""


def test_corrupt_db_is_left_untouched(tmp_path):
    db_path = tmp_path / "not-a-db.db"
    db_path.write_bytes(b"This is not SQLite at all, just text. " * 200)
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    result = invoke("run", "-m", "scripted-member", "--db", str(db_path), "Hi")
    assert result.exit_code == 1
    assert "is not a SQLite database" in result.stderr
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before
    assert not (tmp_path / "not-a-db.db-wal").exists()


def test_unwritable_db_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = invoke(
        "run", "-m", "scripted-member", "--db", str(blocker / "evaluations.db"), "Hi"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: The folder for")
    assert "does not exist" in result.stderr


def test_a_db_in_a_missing_folder_is_not_created(tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "evaluations.db"
    result = invoke("run", "-m", "scripted-member", "--db", str(missing), "Hi")
    assert result.exit_code == 1
    assert "does not exist: create it first" in result.stderr
    assert not (tmp_path / "no").exists()


def test_the_default_store_folder_is_made_on_demand(tmp_path, monkeypatch):
    monkeypatch.delenv("LLM_CONSORTIUM_DB")
    monkeypatch.setenv("HOME", str(tmp_path))
    result = invoke(
        "run", "-m", "scripted-member", "--arbiter", "scripted-arbiter", "Hi"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".llm_consortium" / "evaluations.db").exists()


def test_existing_records_survive_bad_input(db_path):
    invoke("run", "-m", "scripted-member", "--db", str(db_path), "Keep me")
    before = rows(db_path, "select * from runs")
    result = invoke("run", "-m", "missing-model", "--db", str(db_path), "Bad")
    assert result.exit_code == 1
    assert rows(db_path, "select * from runs") == before


def test_no_prompt_at_all():
    result = invoke("run", "-m", "scripted-member", input="\n\n")
    assert result.exit_code == 2
    assert "No prompts on stdin" in result.stderr


def test_a_failed_evaluation_judges_nobody(db_path, add_scripted_model):
    add_scripted_model("babbling-arbiter", reply="No idea.")
    invoke(
        "run",
        "-m",
        "scripted-member:2",
        "--arbiter",
        "babbling-arbiter",
        "--db",
        str(db_path),
        "Judge",
    )
    assert rows(db_path, "select * from model_performance") == []
    (evaluation,) = rows(db_path, "select evaluated_models, error from evaluations")
    assert json.loads(evaluation["evaluated_models"]) == ["scripted-member"] * 2
    assert evaluation["error"]


def test_a_model_without_its_key_is_refused_before_recording(db_path, monkeypatch):
    monkeypatch.delenv("LLM_ECHO_NEEDS_KEY_KEY", raising=False)
    result = invoke("run", "-m", "echo-needs-key", "--db", str(db_path), "Hi")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Model echo-needs-key needs an API key: No key found - add one "
        "using 'llm keys set echo-needs-key' or set the LLM_ECHO_NEEDS_KEY_KEY "
        "environment variable.\n"
    )
    assert not db_path.exists()


def test_a_key_from_the_environment_is_enough(db_path, monkeypatch):
    monkeypatch.setenv("LLM_ECHO_NEEDS_KEY_KEY", "a-fake-key-for-tests")
    result = invoke(
        "run",
        "-m",
        "echo-needs-key:2",
        "--judging-method",
        "consensus",
        "--max-iterations",
        "1",
        "--db",
        str(db_path),
        "Hi",
    )
    assert result.exit_code == 0, result.output


def test_one_model_named_twice_numbers_its_instances_on(db_path):
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "-m",
        "scripted-member:2",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Count",
    )
    assert result.exit_code == 0, result.output
    instances = rows(
        db_path,
        "select label, instance from model_calls where role = 'member' order by label",
    )
    assert [(r["label"], r["instance"]) for r in instances] == [
        ("A", 1),
        ("B", 2),
        ("C", 3),
    ]


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["-m", "scripted-member"], "needs at least two members"),
        (
            ["-m", "scripted-member:2", "--arbiter", "scripted-arbiter"],
            "needs no arbiter model",
        ),
    ],
)
def test_consensus_misuse_is_refused(arguments, message, db_path):
    result = invoke(
        "run", "--judging-method", "consensus", "--db", str(db_path), *arguments, "Hi"
    )
    assert result.exit_code == 1
    assert message in result.stderr
    assert not db_path.exists()


def test_a_log_file_that_cannot_be_written_is_refused(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_CONSORTIUM_LOG_FILE", str(tmp_path))
    result = invoke("run", "-m", "scripted-member", "--db", str(db_path), "Hi")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Cannot write the log file {tmp_path}")
    assert "Traceback" not in result.output
    assert not db_path.exists()


def test_several_runs_in_one_context_get_their_own_ids(db_path):
    from recorder import create_consortium
    from recorder.tracing import consortium_context

    with (
        create_consortium(
            ["scripted-member:2"], arbiter="scripted-arbiter", db_path=str(db_path)
        ) as consortium,
        consortium_context() as context,
    ):
        first = consortium.orchestrate("One")
        second = consortium.orchestrate("Two")
    assert first["consortium_id"] == context.consortium_id
    assert second["consortium_id"] != first["consortium_id"]
    assert context.metrics["model_calls"] == 6
    assert context.metrics["total_tokens"] == (
        sum(first["token_usage"].values()) + sum(second["token_usage"].values())
    )
    statuses = rows(db_path, "select status from runs")
    assert statuses == [{"status": "completed"}] * 2


def test_debug_level_logs_each_request_before_its_call(db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_CONSORTIUM_LOG_LEVEL", "DEBUG")
    invoke(
        "run",
        "-m",
        "scripted-member:2",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        "Debug me",
    )
    lines = log_lines(tmp_path)
    requests = [line for line in lines if line["event_type"] == "model_request"]
    assert len(requests) == 3
    assert all(line["levelname"] == "DEBUG" for line in requests)
    calls = {line["request_id"] for line in lines if line["event_type"] == "model_call"}
    assert {line["request_id"] for line in requests} == calls
    (decision,) = [line for line in lines if line["event_type"] == "arbiter_decision"]
    arbiter_call = rows(
        db_path, "select request_id from model_calls where role = 'arbiter'"
    )
    assert decision["request_id"] == arbiter_call[0]["request_id"]
