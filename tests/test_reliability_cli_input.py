"""Every wrong option, value or file: one sentence, a non-zero exit, no traceback."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3

import pytest
from click.testing import CliRunner
from reliability_support import rows

from recorder.cli import cli

RUN = ["run", "-m", "scripted-member", "--arbiter", "scripted-arbiter"]
READ_COMMANDS = [
    ["runs"],
    ["leaderboard"],
    ["run-info", "cons-"],
    ["export-training", "-"],
]


def invoke(arguments, input=None):
    return CliRunner().invoke(cli, arguments, input=input)


def assert_one_sentence(result, fragment: str) -> None:
    assert result.exit_code not in (0, None), result.output
    # Only a clean exit, never an exception that escaped.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], errors[0]


@pytest.fixture
def recorded_store(db_path):
    result = invoke([*RUN, "--db", str(db_path), "Keep this run"])
    assert result.exit_code == 0, result.output
    return db_path


def snapshot(path) -> dict[str, list[dict]]:
    return {
        table: rows(path, f"select * from [{table}]")
        for table in ("runs", "model_calls", "evaluations", "model_performance")
    }


BAD_RUN_OPTIONS = [
    (["--confidence-threshold", "x"], "'x' is not a valid float"),
    (["--confidence-threshold", "-0.1"], "--confidence-threshold"),
    (["--confidence-threshold", "1.01"], "--confidence-threshold"),
    (["--confidence-threshold", "nan"], "between 0 and 1"),
    (["--min-iterations", "0"], "--min-iterations"),
    (["--min-iterations", "1.5"], "'1.5' is not a valid integer"),
    (["--max-iterations", "0"], "--max-iterations"),
    (["--max-iterations", "two"], "--max-iterations"),
    (["--min-iterations", "3", "--max-iterations", "2"], "cannot be more than"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "-5"], "--timeout"),
    (["--timeout", "soon"], "--timeout"),
    (["--timeout", "nan"], "The timeout must be a positive number of seconds"),
    (["--timeout", "inf"], "The timeout must be a positive number of seconds"),
    (["--timeout", "1e300"], "The timeout must be a positive number of seconds"),
    (["--retries", "-1"], "--retries"),
    (["--retries", "many"], "--retries"),
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "2.5"], "--concurrency"),
    (["--judging-method", "vote"], "--judging-method"),
    (["-m", ""], "A model name cannot be empty."),
    (["-m", "scripted-member:0"], "Instance count must be at least 1"),
    (["-m", "nonexistent-model"], "Unknown model: nonexistent-model"),
    (["--arbiter", "nonexistent-model"], "Unknown model: nonexistent-model"),
    (["--no-such-option"], "No such option"),
]


@pytest.mark.parametrize("options,fragment", BAD_RUN_OPTIONS)
def test_bad_run_options(recorded_store, options, fragment):
    before = snapshot(recorded_store)
    result = invoke([*RUN, *options, "--db", str(recorded_store), "A prompt"])
    assert_one_sentence(result, fragment)
    assert snapshot(recorded_store) == before


BAD_READ_OPTIONS = [
    (["runs", "--limit", "-1"], "--limit"),
    (["runs", "--limit", "lots"], "--limit"),
    (["runs", "--status", "sleeping"], "--status"),
    (["leaderboard", "--limit", "-3"], "--limit"),
    (["leaderboard", "--since", "last tuesday"], "--since"),
    (["leaderboard", "--since", "2025-13-45"], "--since"),
    (["leaderboard", "--sort", "vibes"], "--sort"),
    (["run-info"], "Missing argument"),
    (["run-info", "cons-ffffffffffffffff"], "cons-ffffffffffffffff"),
    (["run-info", "%"], "%"),
    (["run-info", "../../etc/passwd"], "../../etc/passwd"),
    (["export-training", "-", "--min-confidence", "2"], "--min-confidence"),
    (["export-training", "-", "--min-confidence", "high"], "--min-confidence"),
    (["export-training", "-", "--since", "yesterday"], "--since"),
    (["export-training"], "Missing argument"),
]


@pytest.mark.parametrize("arguments,fragment", BAD_READ_OPTIONS)
def test_bad_read_options(recorded_store, arguments, fragment):
    before = snapshot(recorded_store)
    result = invoke([*arguments, "--db", str(recorded_store)])
    assert_one_sentence(result, fragment)
    assert snapshot(recorded_store) == before


def test_export_to_a_folder_or_a_missing_folder(recorded_store, tmp_path):
    result = invoke(["export-training", str(tmp_path), "--db", str(recorded_store)])
    assert_one_sentence(result, str(tmp_path))
    missing = tmp_path / "no" / "such" / "folder" / "out.jsonl"
    result = invoke(["export-training", str(missing), "--db", str(recorded_store)])
    assert_one_sentence(result, "out.jsonl")


def text_file(path):
    path.write_bytes(b"Dear diary, today I was not a database.\n" * 300)


def png_file(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)


def fake_header(path):
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 8000)


def cut_store(path, keep_bytes: int) -> None:
    source = path.with_name("source.db")
    result = invoke([*RUN, "--db", str(source), "To be cut short"])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(source) as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
    path.write_bytes(source.read_bytes()[:keep_bytes])


def store_cut_mid_page(path):
    cut_store(path, 1500)


def store_cut_at_a_page_boundary(path):
    cut_store(path, 2 * 4096)


BROKEN_FILES = [
    text_file,
    png_file,
    fake_header,
    store_cut_mid_page,
    store_cut_at_a_page_boundary,
]


@pytest.mark.parametrize("make_file", BROKEN_FILES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "arguments", [[*RUN, "Hi"], *READ_COMMANDS], ids=lambda a: a[0]
)
def test_a_file_that_is_not_a_store_is_left_untouched(tmp_path, make_file, arguments):
    path = tmp_path / "broken.db"
    make_file(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = invoke([*arguments, "--db", str(path)])
    assert_one_sentence(result, "broken.db")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not path.with_name("broken.db-wal").exists()
    assert not path.with_name("broken.db-journal").exists()


@pytest.mark.parametrize(
    "arguments", [[*RUN, "Hi"], *READ_COMMANDS], ids=lambda a: a[0]
)
def test_a_folder_as_the_store(tmp_path, arguments):
    result = invoke([*arguments, "--db", str(tmp_path)])
    assert_one_sentence(result, str(tmp_path.name))


def corrupt_table_page(source, path, table: str) -> None:
    """Copy ``source`` to ``path`` with the root page of ``table`` overwritten."""
    shutil.copy(source, path)
    conn = sqlite3.connect(source)
    page_size = conn.execute("pragma page_size").fetchone()[0]
    (root_page,) = conn.execute(
        "select rootpage from sqlite_master where name = ?", [table]
    ).fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root_page - 1) * page_size
    data[start : start + page_size] = b"\xab" * page_size
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "table", ["runs", "model_calls", "evaluations", "model_performance"]
)
def test_corruption_inside_a_table_is_one_sentence(recorded_store, tmp_path, table):
    path = tmp_path / "damaged.db"
    with sqlite3.connect(recorded_store) as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
    corrupt_table_page(recorded_store, path, table)
    for arguments in ([*RUN, "Hi"], *READ_COMMANDS, ["run-info", "cons-0"]):
        result = invoke([*arguments, "--db", str(path)])
        assert "Traceback" not in result.output, (arguments, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            arguments,
            repr(result.exception),
        )
        if result.exit_code != 0:
            errors = [line for line in result.stderr.splitlines() if "Error" in line]
            assert errors, (arguments, result.output)
