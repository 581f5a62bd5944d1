"""Helpers for the reliability tests: real recorder processes on real stores.

Each recorder runs ``tests/scripted_cli.py`` in its own Python process, with
the scripted models registered through ``llm``'s plugin manager and any extra
scripts passed in ``SCRIPTED_MODELS``.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

TESTS = pathlib.Path(__file__).parent
REPO = TESTS.parent
SCRIPTED_CLI = TESTS / "scripted_cli.py"


def recorder_environment(
    tmp_path: pathlib.Path,
    scripts: dict[str, dict[str, Any]] | None = None,
    **variables: str,
) -> dict[str, str]:
    """The environment for a recorder subprocess, kept inside ``tmp_path``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLM_", "SCRIPTED_")) and not name.endswith("_KEY")
    }
    environment.update(
        {
            "LLM_USER_PATH": str(tmp_path / "llm-user"),
            "LLM_CONSORTIUM_LOG_FILE": str(tmp_path / "consortium.log"),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if scripts:
        environment["SCRIPTED_MODELS"] = json.dumps(scripts)
    environment.update(variables)
    return environment


def start_recorder(
    arguments: Sequence[str],
    environment: dict[str, str],
    *,
    prompts: Sequence[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``consortium-record <arguments>``; prompts, if any, go to stdin."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTED_CLI), *arguments],
        env=environment,
        cwd=str(REPO),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if prompts is not None:
        assert process.stdin is not None
        process.stdin.write("".join(f"{p}\n" for p in prompts).encode())
    if process.stdin is not None:
        process.stdin.close()
        process.stdin = None
    return process


def finish(process: subprocess.Popen[bytes], timeout: float = 120) -> tuple[int, str]:
    """Wait for a recorder; return its exit code and its stderr as text."""
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr.decode("utf-8", "replace")


def rows(path: os.PathLike[str] | str, sql: str, parameters: Sequence[Any] = ()):
    """The rows of a query on a store file, as dicts, through a fresh connection."""
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, parameters)]
    finally:
        conn.close()


def scalar(path: os.PathLike[str] | str, sql: str, parameters: Sequence[Any] = ()):
    (row,) = rows(path, sql, parameters)
    return next(iter(row.values()))


def integrity(path: os.PathLike[str] | str) -> str:
    return scalar(path, "pragma integrity_check")


def wait_for(
    condition: Callable[[], bool], timeout: float = 30, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it is true; fail the test if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sqlite3.OperationalError:
            pass  # the store is not created yet, or is busy for a moment
        time.sleep(interval)
    raise AssertionError(f"Gave up after {timeout} seconds waiting for {condition}")
