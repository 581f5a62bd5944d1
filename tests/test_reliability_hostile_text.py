"""NUL bytes, invalid UTF-8, 5 MB of text and HTML: recorded as they came."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from click.testing import CliRunner
from reliability_support import (
    REPO,
    SCRIPTED_CLI,
    finish,
    integrity,
    recorder_environment,
    rows,
    scalar,
    start_recorder,
)

from recorder.cli import cli
from recorder.evaluation_store import EvaluationStore

HTML_PAYLOAD = (
    "<script>alert('x')</script><img src=x onerror=alert(1)>"
    "</textarea></pre>\"'&amp;{{ 7 * 7 }}"
)
NUL_TEXT = "before\x00after\x00\x00end"
FIVE_MEGABYTES = 5 * 1024 * 1024
# A terminal would clear the screen, retitle the window and ring the bell.
TERMINAL_ATTACK = "\x1b[2J\x1b]0;owned\x07\x1b[31mred\x9b1m\r\x08\u202egnp.exe"


def invoke(*arguments: str, input: str | None = None):
    return CliRunner().invoke(cli, list(arguments), input=input)


def big_text(size: int) -> str:
    line = "All work and no play makes a long reply. "
    return (line * (size // len(line) + 1))[:size]


def test_nul_bytes_html_and_five_megabytes_are_recorded_exactly(
    db_path, tmp_path, add_scripted_model
):
    huge_reply = big_text(FIVE_MEGABYTES) + NUL_TEXT
    add_scripted_model("html-member", reply=HTML_PAYLOAD + NUL_TEXT)
    add_scripted_model("huge-member", reply=huge_reply)
    prompt = f"{HTML_PAYLOAD} {NUL_TEXT} " + big_text(FIVE_MEGABYTES)
    result = invoke(
        "run",
        "-m",
        "html-member",
        "-m",
        "huge-member",
        "--arbiter",
        "scripted-arbiter",
        "--system",
        NUL_TEXT + HTML_PAYLOAD,
        "--db",
        str(db_path),
        prompt,
    )
    assert result.exit_code == 0, result.output[:2000]

    (run,) = rows(db_path, "select * from runs")
    assert run["prompt"] == prompt
    assert run["system"] == NUL_TEXT + HTML_PAYLOAD
    replies = {
        call["model"]: call["response"]
        for call in rows(db_path, "select * from model_calls where role = 'member'")
    }
    assert replies == {
        "html-member": HTML_PAYLOAD + NUL_TEXT,
        "huge-member": huge_reply,
    }
    assert scalar(
        db_path,
        "select length(cast(response as blob)) from model_calls "
        "where model = 'huge-member'",
    ) == len(huge_reply.encode())
    (arbiter_call,) = rows(db_path, "select * from model_calls where role = 'arbiter'")
    assert huge_reply[:1000] in arbiter_call["prompt"]
    (evaluation,) = rows(db_path, "select prompt_text from evaluations")
    assert evaluation["prompt_text"] == prompt
    assert integrity(db_path) == "ok"

    # The log keeps previews, not megabytes, and every line is one JSON object.
    log_text = (tmp_path / "consortium.log").read_text()
    lines = log_text.splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert len(log_text) < 100_000


def test_nul_bytes_and_html_in_prompts_from_stdin(db_path):
    prompts = [f"{HTML_PAYLOAD} one", f"{NUL_TEXT} two"]
    result = invoke(
        "run",
        "-m",
        "scripted-member",
        "--arbiter",
        "scripted-arbiter",
        "--db",
        str(db_path),
        input="\n".join(prompts) + "\n",
    )
    assert result.exit_code == 0, result.output
    stored = {row["prompt"] for row in rows(db_path, "select prompt from runs")}
    assert stored == set(prompts)


INVALID_UTF8 = b"caf\xe9 \xff\xfe na\xc3\xafve \xed\xa0\x80 end"
# Each undecodable byte becomes U+FFFD; the valid "ï" stays.
INVALID_UTF8_STORED = INVALID_UTF8.decode("utf-8", "replace")


def test_invalid_utf8_prompt_argument_is_recorded_with_replacement_characters(
    tmp_path, db_path
):
    arguments = [
        os.fsencode(sys.executable),
        os.fsencode(str(SCRIPTED_CLI)),
        b"run",
        b"-m",
        b"scripted-member",
        b"--arbiter",
        b"scripted-arbiter",
        b"--db",
        os.fsencode(str(db_path)),
        INVALID_UTF8,
    ]
    completed = subprocess.run(
        arguments,
        env=recorder_environment(tmp_path),
        cwd=str(REPO),
        capture_output=True,
        timeout=60,
    )
    stderr = completed.stderr.decode("utf-8", "replace")
    assert completed.returncode == 0, stderr
    assert "Traceback" not in stderr
    (run,) = rows(db_path, "select * from runs")
    assert run["prompt"] == INVALID_UTF8_STORED
    assert run["status"] == "completed"


def test_invalid_utf8_on_stdin_is_recorded_with_replacement_characters(
    tmp_path, db_path
):
    for number, io_encoding in enumerate(["utf-8:strict", "utf-8:surrogateescape"]):
        completed = subprocess.run(
            [sys.executable, str(SCRIPTED_CLI), "run", "-m", "scripted-member"]
            + ["--arbiter", "scripted-arbiter", "--db", str(db_path)],
            input=INVALID_UTF8 + b"\n" + b"tab\there nul\x00here\n",
            env=recorder_environment(tmp_path, PYTHONIOENCODING=io_encoding),
            cwd=str(REPO),
            capture_output=True,
            timeout=60,
        )
        stderr = completed.stderr.decode("utf-8", "replace")
        assert completed.returncode == 0, stderr
        assert "Traceback" not in stderr
        prompts = [row["prompt"] for row in rows(db_path, "select prompt from runs")]
        assert prompts[2 * number :] == [INVALID_UTF8_STORED, "tab\there nul\x00here"]


def test_replies_with_lone_surrogates_are_stored_not_crashed_on(tmp_path, db_path):
    # What a plugin might hand back after decoding bytes with surrogateescape,
    # or after reading half an emoji from JSON.
    scripts = {"mangled-member": {"reply": "bad \udcff byte, half \ud83d emoji"}}
    recorder = start_recorder(
        [
            "run",
            "-m",
            "mangled-member",
            "-m",
            "scripted-member",
            "--arbiter",
            "scripted-arbiter",
            "--db",
            str(db_path),
            "Reply badly",
        ],
        recorder_environment(tmp_path, scripts, PYTHONIOENCODING="utf-8:strict"),
    )
    exit_code, stderr = finish(recorder)
    assert exit_code == 0, stderr
    assert "Traceback" not in stderr and "Logging error" not in stderr
    (call,) = rows(db_path, "select * from model_calls where model = 'mangled-member'")
    assert call["response"] == "bad \ufffd byte, half \ufffd emoji"
    assert call["status"] == "ok"


def test_the_store_accepts_text_python_cannot_encode(db_path):
    with EvaluationStore(db_path) as store:
        store.start_run(
            consortium_id="cons-0000000000000001",
            trace_id="0" * 32,
            prompt="lone \udce9 surrogate",
            models=[{"model": "m", "count": 1}],
            arbiter="a",
            judging_method="default",
            confidence_threshold=0.8,
            min_iterations=1,
            max_iterations=1,
        )
        store.finish_run(
            "cons-0000000000000001",
            status="failed",
            iteration_count=0,
            error="an error with \ud800 in it",
        )
    (run,) = rows(db_path, "select * from runs")
    assert run["prompt"] == "lone \ufffd surrogate"
    assert run["error"] == "an error with \ufffd in it"


CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]")


def test_runs_and_run_info_never_send_a_models_escape_sequences(
    db_path, add_scripted_model
):
    add_scripted_model("terminal-member", reply=TERMINAL_ATTACK)
    add_scripted_model(
        "terminal-arbiter",
        reply=(
            f"<synthesis>{TERMINAL_ATTACK}</synthesis><confidence>0.9</confidence>"
            f"<analysis>{TERMINAL_ATTACK}</analysis><ranking>A</ranking>"
        ),
    )
    result = invoke(
        "run",
        "-m",
        "terminal-member",
        "--arbiter",
        "terminal-arbiter",
        "--db",
        str(db_path),
        f"Prompt {TERMINAL_ATTACK}",
    )
    assert result.exit_code == 0, result.output
    (run,) = rows(db_path, "select consortium_id from runs")
    for arguments in (
        ["runs"],
        ["runs", "--status", "completed"],
        ["run-info", run["consortium_id"]],
        ["leaderboard"],
    ):
        shown = invoke(*arguments, "--db", str(db_path))
        assert shown.exit_code == 0, shown.output
        assert not CONTROL.search(shown.output), (arguments, shown.output)
    # The record itself keeps the reply as it was.
    (call,) = rows(db_path, "select response from model_calls where role = 'member'")
    assert call["response"] == TERMINAL_ATTACK
