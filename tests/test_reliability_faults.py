"""Members and arbiters that fail: every attempt is recorded, statuses are honest."""

from __future__ import annotations

import json
import threading
from datetime import datetime

import llm
import llm.plugins
import pytest
from click.testing import CliRunner
from reliability_support import rows

from recorder.cli import cli
from recorder.proxy import is_transient

_counts: dict[str, int] = {}
_counts_lock = threading.Lock()


class ProviderRateLimitError(Exception):
    """Shaped like an SDK's rate-limit error: a name and an HTTP status."""

    status_code = 429


class ProviderBadRequest(Exception):
    status_code = 400


class FlakyModel(llm.Model):
    """Fails its first ``failures`` calls with ``error``, then answers."""

    can_stream = False

    def __init__(self, model_id: str, failures: int, error: type[Exception]) -> None:
        self.model_id = model_id
        self.failures = failures
        self.error = error

    def execute(self, prompt, stream, response, conversation=None):
        with _counts_lock:
            call_number = _counts.get(self.model_id, 0)
            _counts[self.model_id] = call_number + 1
        if call_number < self.failures:
            raise self.error(f"{self.model_id} call {call_number + 1} failed")
        response.set_usage(input=3, output=2)
        yield f"{self.model_id} answers on call {call_number + 1}"


class FaultyProviders:
    """An ``llm`` plugin whose models fail the way hosted providers do."""

    @llm.hookimpl
    def register_models(self, register):
        register(FlakyModel("flaky-twice", 2, ProviderRateLimitError))
        register(FlakyModel("flaky-always", 10**6, ProviderRateLimitError))
        register(FlakyModel("bad-request", 10**6, ProviderBadRequest))


@pytest.fixture(autouse=True)
def faulty_providers():
    plugin = FaultyProviders()
    llm.plugins.pm.register(plugin, name="faulty_providers")
    _counts.clear()
    yield
    llm.plugins.pm.unregister(plugin)


def invoke(*arguments: str):
    return CliRunner().invoke(cli, list(arguments), catch_exceptions=False)


def run(db_path, *arguments: str):
    return invoke("run", "--db", str(db_path), "--json", *arguments)


def calls_of(db_path, model: str):
    return rows(
        db_path, "select * from model_calls where model = ? order by attempt", [model]
    )


def test_transient_errors_are_detected():
    assert is_transient(ProviderRateLimitError("slow down"))
    assert not is_transient(ProviderBadRequest("bad"))
    assert not is_transient(ValueError("no"))


def test_every_member_fault_is_recorded_and_the_iteration_goes_on(
    db_path, add_scripted_model
):
    add_scripted_model("raising-member", fail="The model crashed")
    add_scripted_model("late-member", reply="too late", delay=3)
    add_scripted_model("empty-member", reply="")
    result = run(
        db_path,
        "-m",
        "scripted-member",
        "-m",
        "raising-member",
        "-m",
        "late-member",
        "-m",
        "empty-member",
        "-m",
        "flaky-twice",
        "--arbiter",
        "scripted-arbiter",
        "--timeout",
        "0.5",
        "Go on",
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["status"] == "completed"

    (raised,) = calls_of(db_path, "raising-member")
    assert (raised["status"], raised["attempt"]) == ("error", 1)
    assert "The model crashed" in raised["error"]
    (late,) = calls_of(db_path, "late-member")
    assert late["status"] == "timeout" and late["response"] is None
    (empty,) = calls_of(db_path, "empty-member")
    assert empty["status"] == "ok" and empty["response"] == ""

    flaky = calls_of(db_path, "flaky-twice")
    assert [(c["attempt"], c["status"]) for c in flaky] == [
        (1, "error"),
        (2, "error"),
        (3, "ok"),
    ]
    assert "ProviderRateLimitError" in flaky[0]["error"]
    assert flaky[2]["response"] == "flaky-twice answers on call 3"
    assert len({c["request_id"] for c in flaky}) == 3
    # Backoff: each retry started at least half its nominal delay after the
    # previous attempt had finished (0.5 s, then 1 s, each jittered by +-50%).
    for before, after, nominal in ((flaky[0], flaky[1], 0.5), (flaky[1], flaky[2], 1)):
        gap = datetime.fromisoformat(after["started_at"]) - datetime.fromisoformat(
            before["finished_at"]
        )
        assert gap.total_seconds() >= nominal / 2

    performance = {
        p["model"]: p for p in rows(db_path, "select * from model_performance")
    }
    assert performance["raising-member"]["error"]
    assert performance["late-member"]["error"] == "Timed out after 0.5 seconds"
    assert performance["empty-member"]["error"] == "The model returned an empty reply."
    assert performance["flaky-twice"]["error"] is None
    # The performance row points at the attempt that answered.
    assert performance["flaky-twice"]["request_id"] == flaky[2]["request_id"]
    ranked = {p["model"] for p in performance.values() if p["rank"] is not None}
    assert ranked == {"scripted-member", "flaky-twice"}
    (arbiter_call,) = calls_of(db_path, "scripted-arbiter")
    assert "too late" not in arbiter_call["prompt"]


def test_a_member_whose_retries_run_out_is_an_honest_failure(db_path):
    result = run(
        db_path,
        "-m",
        "scripted-member",
        "-m",
        "flaky-always",
        "--arbiter",
        "scripted-arbiter",
        "--retries",
        "1",
        "Again",
    )
    assert result.exit_code == 0, result.output
    flaky = calls_of(db_path, "flaky-always")
    assert [(c["attempt"], c["status"]) for c in flaky] == [(1, "error"), (2, "error")]
    (performance,) = rows(
        db_path, "select * from model_performance where model = 'flaky-always'"
    )
    assert "ProviderRateLimitError" in performance["error"]
    assert performance["rank"] is None and performance["chosen"] == 0


def test_no_retries_and_no_retrying_permanent_errors(db_path):
    result = run(
        db_path,
        "-m",
        "flaky-always",
        "-m",
        "bad-request",
        "--arbiter",
        "scripted-arbiter",
        "--retries",
        "0",
        "Once",
    )
    assert result.exit_code == 1
    assert len(calls_of(db_path, "flaky-always")) == 1
    assert len(calls_of(db_path, "bad-request")) == 1
    (run_row,) = rows(db_path, "select * from runs")
    assert run_row["status"] == "failed"
    assert run_row["error"].startswith("Every member failed in iteration 1")


def test_default_retries_are_a_small_number(db_path):
    result = run(
        db_path,
        "-m",
        "scripted-member",
        "-m",
        "bad-request",
        "--arbiter",
        "flaky-twice",
        "Judge",
    )
    # The arbiter's two rate-limit errors are retried under the default.
    arbiter_calls = calls_of(db_path, "flaky-twice")
    assert [c["status"] for c in arbiter_calls] == ["error", "error", "ok"]
    assert all(c["role"] == "arbiter" for c in arbiter_calls)
    # Its answer is not a decision, so the run still fails, honestly.
    assert result.exit_code == 1
    (evaluation,) = rows(db_path, "select * from evaluations")
    assert evaluation["request_id"] == arbiter_calls[-1]["request_id"]
    assert evaluation["raw_response"] == "flaky-twice answers on call 3"


def assert_run_failed_honestly(db_path, result):
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "runs failed" in result.stderr
    (run_row,) = rows(db_path, "select * from runs")
    assert run_row["status"] == "failed"
    assert run_row["synthesis"] is None
    assert run_row["error"]
    assert run_row["finished_at"] is not None
    (evaluation,) = rows(db_path, "select * from evaluations")
    assert evaluation["error"]
    return run_row, evaluation


def test_an_arbiter_that_raises_fails_the_run(db_path, add_scripted_model):
    add_scripted_model("raising-arbiter", fail="Arbiter provider exploded")
    result = run(
        db_path, "-m", "scripted-member:2", "--arbiter", "raising-arbiter", "Judge"
    )
    run_row, evaluation = assert_run_failed_honestly(db_path, result)
    assert "Arbiter provider exploded" in run_row["error"]
    assert evaluation["error"].startswith("The arbiter call failed")
    assert evaluation["raw_response"] is None
    (arbiter_call,) = calls_of(db_path, "raising-arbiter")
    assert arbiter_call["status"] == "error"
    # Both member answers are still there.
    assert len(rows(db_path, "select * from model_calls where role = 'member'")) == 2


def test_an_arbiter_that_hangs_fails_the_run(db_path, add_scripted_model):
    add_scripted_model("stuck-arbiter", arbiter=True, delay=3)
    result = run(
        db_path,
        "-m",
        "scripted-member",
        "--arbiter",
        "stuck-arbiter",
        "--timeout",
        "0.4",
        "Judge",
    )
    run_row, evaluation = assert_run_failed_honestly(db_path, result)
    assert "Timed out after 0.4 seconds" in evaluation["error"]
    (arbiter_call,) = calls_of(db_path, "stuck-arbiter")
    assert arbiter_call["status"] == "timeout"


GARBAGE_REPLIES = [
    "",
    "   \n\t  ",
    "I like all of them!",
    "<synthesis></synthesis><confidence>0.9</confidence>",
    "<synthesis>Fine</synthesis>",
    "<synthesis>Fine</synthesis><confidence>banana</confidence>",
    "<synthesis>Fine</synthesis><confidence>150</confidence>",
    '{"synthesis": "Fine"}',
    '{"confidence": 0.9}',
    "\x00\x01\x02\x1b[31m",
    "<confidence>0.9",
]


@pytest.mark.parametrize("reply", GARBAGE_REPLIES)
def test_an_arbiter_answering_garbage_fails_the_run(db_path, add_scripted_model, reply):
    add_scripted_model("garbage-arbiter", reply=reply)
    result = run(db_path, "-m", "scripted-member", "--arbiter", "garbage-arbiter", "J")
    run_row, evaluation = assert_run_failed_honestly(db_path, result)
    # The reply is kept exactly as the arbiter sent it (the scripted model
    # strips nothing), beside the parser's sentence.
    assert evaluation["raw_response"] == reply
    assert run_row["error"] == evaluation["error"]
    assert json.loads(result.stdout)["status"] == "failed"


def test_garbage_in_a_later_iteration_still_fails_the_run(db_path, add_scripted_model):
    unsure = (
        "<synthesis>Maybe</synthesis><confidence>0.3</confidence>"
        "<needs_iteration>yes</needs_iteration><ranking>A</ranking>"
    )
    add_scripted_model("fickle-arbiter", replies=[unsure, "no idea, sorry"])
    result = run(db_path, "-m", "scripted-member", "--arbiter", "fickle-arbiter", "J")
    assert result.exit_code == 1
    (run_row,) = rows(db_path, "select * from runs")
    assert run_row["status"] == "failed"
    assert run_row["iteration_count"] == 2
    assert run_row["synthesis"] is None
    evaluations = rows(db_path, "select * from evaluations order by iteration_id")
    assert [e["error"] is None for e in evaluations] == [True, False]
    assert evaluations[0]["confidence"] == 0.3
    assert evaluations[1]["raw_response"] == "no idea, sorry"
