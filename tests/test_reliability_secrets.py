"""API keys that ``llm`` knows never reach a log line or a stored error."""

from __future__ import annotations

import json
import secrets
import sqlite3

import llm
import pytest
from click.testing import CliRunner
from reliability_support import finish, recorder_environment, rows, start_recorder

from recorder.cli import cli
from recorder.redaction import forget_cached_secrets

ENVIRONMENT_KEY = "sk-fake-" + secrets.token_hex(16)
# Shaped like no known key format, so only knowing it can catch it.
PLAIN_ENVIRONMENT_KEY = "plain" + secrets.token_hex(12)
STORED_KEY = "stored" + secrets.token_hex(12)


def leaky_error(*keys: str) -> str:
    """A provider error that echoes the keys it was sent, the way some do."""
    first, *rest = keys
    echoed = " ".join(f"(sent {key!r})" for key in rest)
    return (
        f"401 Client Error: Unauthorized for url: "
        f"https://api.example.com/v1/chat/completions?key={first}&stream=false "
        f"{echoed} -- check {first} in your settings"
    )


KEYS = (ENVIRONMENT_KEY, PLAIN_ENVIRONMENT_KEY, STORED_KEY)
SCRIPTS = {
    "leaky-member": {"fail": leaky_error(*KEYS)},
    "leaky-arbiter": {"fail": leaky_error(*reversed(KEYS))},
}


def write_key_store(tmp_path) -> None:
    user_path = tmp_path / "llm-user"
    user_path.mkdir(exist_ok=True)
    (user_path / "keys.json").write_text(json.dumps({"anthropic": STORED_KEY}))


def assert_no_key_in(text: str, where: str) -> None:
    for key in KEYS:
        assert key not in text, f"a key reached {where}"


def store_contents(path) -> str:
    """Every value of every table, as one text, plus the files' raw bytes."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in conn.execute("select name from sqlite_master where type='table'")
        ]
        values = [
            repr(row)
            for table in tables
            for row in conn.execute(f"select * from [{table}]")
        ]
    finally:
        conn.close()
    raw = b"".join(
        candidate.read_bytes()
        for candidate in (path, path.with_name(path.name + "-wal"))
        if candidate.exists()
    )
    return "\n".join(values) + raw.decode("latin-1")


def test_keys_echoed_by_failing_providers_are_redacted_everywhere(tmp_path):
    write_key_store(tmp_path)
    db_path = tmp_path / "secrets.db"
    environment = recorder_environment(
        tmp_path,
        SCRIPTS,
        OPENAI_API_KEY=ENVIRONMENT_KEY,
        MISTRAL_API_KEY=PLAIN_ENVIRONMENT_KEY,
        LLM_CONSORTIUM_LOG_LEVEL="DEBUG",
    )
    recorder = start_recorder(
        [
            "run",
            "-m",
            "scripted-member",
            "-m",
            "leaky-member",
            "--arbiter",
            "leaky-arbiter",
            "--retries",
            "0",
            "--trace",
            "--json",
            "--db",
            str(db_path),
            "Who am I?",
        ],
        environment,
    )
    stdout, stderr = recorder.communicate(timeout=60)
    assert recorder.returncode == 1
    assert "leaky-member" in stderr.decode() and "[REDACTED]" in stderr.decode()

    assert_no_key_in(stdout.decode(), "stdout")
    assert_no_key_in(stderr.decode(), "stderr with --trace")
    log_text = (tmp_path / "consortium.log").read_text()
    assert "model_error" in log_text
    assert_no_key_in(log_text, "the log file")
    assert_no_key_in(store_contents(db_path), "the store")

    # The errors are kept, with the keys masked, not dropped.
    (member_call,) = rows(
        db_path, "select * from model_calls where model = 'leaky-member'"
    )
    assert member_call["error"].startswith("ScriptedError: 401 Client Error")
    assert member_call["error"].count("[REDACTED]") >= 3
    (run,) = rows(db_path, "select * from runs")
    assert run["status"] == "failed"
    assert "[REDACTED]" in run["error"]
    (evaluation,) = rows(db_path, "select * from evaluations")
    assert "[REDACTED]" in evaluation["error"]


def test_keys_in_replies_stay_out_of_the_log(tmp_path):
    db_path = tmp_path / "secrets.db"
    scripts = {"echoing-member": {"reply": f"Your key is {PLAIN_ENVIRONMENT_KEY}"}}
    recorder = start_recorder(
        [
            "run",
            "-m",
            "echoing-member",
            "--arbiter",
            "scripted-arbiter",
            "--trace",
            "--db",
            str(db_path),
            f"Repeat {PLAIN_ENVIRONMENT_KEY}",
        ],
        recorder_environment(tmp_path, scripts, MISTRAL_API_KEY=PLAIN_ENVIRONMENT_KEY),
    )
    exit_code, stderr = finish(recorder)
    assert exit_code == 0, stderr
    assert_no_key_in(stderr, "stderr with --trace")
    assert_no_key_in((tmp_path / "consortium.log").read_text(), "the log file")
    # Limitation: what a user sends and a model answers is recorded as it was;
    # only errors and log lines are redacted.
    (call,) = rows(db_path, "select * from model_calls where role = 'member'")
    assert PLAIN_ENVIRONMENT_KEY in call["response"]


class KeyLeakingModel(llm.Model):
    """A model whose failure escapes the call itself (a broken plugin)."""

    model_id = "broken-plugin"
    can_stream = False

    @property
    def supports_schema(self):  # read by the orchestrator, outside the call
        raise RuntimeError(f"plugin misconfigured with api_key={STORED_KEY}!")

    def execute(self, prompt, stream, response, conversation=None):
        yield "never"


class BrokenPlugin:
    @llm.hookimpl
    def register_models(self, register):
        register(KeyLeakingModel())


@pytest.fixture
def broken_plugin():
    plugin = BrokenPlugin()
    llm.plugins.pm.register(plugin, name="broken_plugin")
    yield
    llm.plugins.pm.unregister(plugin)


def test_unexpected_errors_are_redacted_before_they_are_stored(
    tmp_path, db_path, broken_plugin, monkeypatch
):
    write_key_store(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", ENVIRONMENT_KEY)
    forget_cached_secrets()
    result = CliRunner().invoke(
        cli,
        ["run", "-m", "scripted-member", "--arbiter", "broken-plugin"]
        + ["--db", str(db_path), "Hi"],
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert_no_key_in(result.output, "the output")
    (run,) = rows(db_path, "select * from runs")
    assert run["status"] == "failed"
    assert run["error"].startswith("RuntimeError: plugin misconfigured")
    assert_no_key_in(store_contents(db_path), "the store")
    assert_no_key_in((tmp_path / "consortium.log").read_text(), "the log file")
