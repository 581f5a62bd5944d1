"""The SQLite store behind every consortium run: ``evaluations.db``.

The schema is the public API: four tables (``runs``, ``model_calls``,
``evaluations``, ``model_performance``) created and evolved by named
migrations that are applied once and listed in ``_migrations``. Every write is
committed when it is made, so a crash loses nothing that had finished.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import queries, rollups

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_DB_PATH = pathlib.Path("~/.llm_consortium/evaluations.db")
DB_ENVIRONMENT_VARIABLE = "LLM_CONSORTIUM_DB"
BUSY_TIMEOUT_MS = 30_000
RUN_STATUSES = ("running", "completed", "failed", "interrupted")
# Rows read (and lines written) at a time when streaming an export.
EXPORT_BATCH_ROWS = 200


class StoreError(Exception):
    """The store cannot be opened or written; the message is one sentence."""


def utc_now() -> str:
    """The current time as UTC ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def default_db_path() -> str:
    """``$LLM_CONSORTIUM_DB`` if set, else ``~/.llm_consortium/evaluations.db``."""
    configured = os.environ.get(DB_ENVIRONMENT_VARIABLE)
    if configured:
        return configured
    return str(DEFAULT_DB_PATH.expanduser())


# Each migration is applied once, in this order, and recorded by name. They are
# written to be safe on a store that already has some of what they create, so a
# store made by an earlier release, or by the original llm-consortium, is
# brought up to date in place with its data.
def _m001_create_tables(db: sqlite_utils.Database) -> None:
    _ensure_table(db, "runs", queries.RUNS_COLUMNS, pk="consortium_id")
    _ensure_table(db, "model_calls", queries.MODEL_CALLS_COLUMNS, pk="request_id")
    _ensure_table(db, "evaluations", queries.EVALUATIONS_COLUMNS, pk="id")
    _ensure_table(db, "model_performance", queries.MODEL_PERFORMANCE_COLUMNS, pk="id")


def _m002_create_indexes(db: sqlite_utils.Database) -> None:
    for table, columns in queries.INDEXES:
        db[table].create_index(columns, if_not_exists=True)


def _m003_create_daily_rollups(db: sqlite_utils.Database) -> None:
    _ensure_table(db, "model_performance", queries.MODEL_PERFORMANCE_COLUMNS, pk="id")
    # The leaderboard no longer reads latencies in this order, and SQLite
    # would otherwise pick this index for a slow, random-access group by.
    db.conn.execute("drop index if exists idx_model_performance_model_duration_ms")
    rollups.create_rollups(db.conn)
    db["model_performance"].create_index(
        ["model", "duration_bucket_ms", "duration_ms", "timestamp"],
        index_name="idx_model_performance_latency",
        if_not_exists=True,
    )


def _m004_index_runs_by_time_and_status(db: sqlite_utils.Database) -> None:
    # Recent runs of one status, and completed runs in time order (the
    # training export), read straight off these without a sort.
    db["runs"].create_index(["started_at", "status"], if_not_exists=True)
    db["runs"].create_index(
        ["status", "started_at", "consortium_id"], if_not_exists=True
    )
    for superseded in ("idx_runs_started_at", "idx_runs_status"):
        db.conn.execute(f"drop index if exists {superseded}")


def _m005_index_final_evaluations(db: sqlite_utils.Database) -> None:
    # A run's last evaluation, found without a sort (the training export asks
    # this once per run).
    db["evaluations"].create_index(
        ["consortium_id", "iteration_id", "id"], if_not_exists=True
    )


def _m006_index_token_usage_by_model(db: sqlite_utils.Database) -> None:
    # Token usage by model reads only the index, not the calls' prompts and
    # responses: about five times faster on a million calls.
    db["model_calls"].create_index(
        ["model", "input_tokens", "output_tokens", "error", "duration_ms"],
        index_name="idx_model_calls_token_usage",
        if_not_exists=True,
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("m001_create_tables", _m001_create_tables),
    ("m002_create_indexes", _m002_create_indexes),
    ("m003_create_daily_rollups", _m003_create_daily_rollups),
    ("m004_index_runs_by_time_and_status", _m004_index_runs_by_time_and_status),
    ("m005_index_final_evaluations", _m005_index_final_evaluations),
    ("m006_index_token_usage_by_model", _m006_index_token_usage_by_model),
]


def _ensure_table(
    db: sqlite_utils.Database, name: str, columns: dict[str, type], pk: str
) -> None:
    table = db[name]
    if not table.exists():
        table.create(columns, pk=pk)
        return
    existing = set(table.columns_dict)
    for column, column_type in columns.items():
        if column not in existing:
            table.add_column(column, column_type)


# Surrogates that ``surrogateescape`` did not make: half pairs and the like.
_UNPAIRED_SURROGATES = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def valid_text(text: str) -> str:
    """``text`` as valid UTF-8: every byte that was not UTF-8 becomes U+FFFD.

    Python keeps undecodable input (a prompt from a non-UTF-8 terminal, a file
    read with ``surrogateescape``) as lone surrogates, which SQLite cannot
    store; valid text is returned unchanged.
    """
    text = _UNPAIRED_SURROGATES.sub("\ufffd", text)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _storable(value: Any) -> Any:
    return valid_text(value) if isinstance(value, str) else value


def _execute(
    conn: sqlite3.Connection, sql: str, parameters: dict[str, Any] | Sequence[Any]
) -> sqlite3.Cursor:
    """Run one write; text that cannot be encoded is stored repaired, not refused."""
    try:
        return conn.execute(sql, parameters)
    except UnicodeEncodeError:
        if isinstance(parameters, dict):
            return conn.execute(
                sql, {key: _storable(value) for key, value in parameters.items()}
            )
        return conn.execute(sql, [_storable(value) for value in parameters])


def _json_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False)


ABANDONED_RUN_ERROR = "The recording process ended before the run finished."


def recorder_has_died(process_id: object, hostname: object) -> bool:
    """Whether the process that recorded a run, on this host, is gone.

    A process on another host, or an ID that cannot be checked, is taken to
    be alive: only a run whose recorder is known to be gone is settled.
    """
    if not isinstance(process_id, int) or hostname != socket.gethostname():
        return False
    if process_id == os.getpid():
        return False
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


class EvaluationStore:
    """The consortium store: open it once, share it between threads.

    :param path: a file path, ``":memory:"``, or ``None`` for the default
        (``$LLM_CONSORTIUM_DB`` or ``~/.llm_consortium/evaluations.db``).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = str(path) if path is not None else default_db_path()
        self._lock = threading.RLock()
        self._batch_depth = 0
        self.hostname = socket.gethostname()
        self.conn = self._connect()
        try:
            self.migrate()
        except BaseException:
            self.conn.close()
            raise

    # Opening ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            file_path = pathlib.Path(self.path).expanduser()
            if file_path.is_dir():
                raise StoreError(f"{self.path} is a directory, not a database file.")
            # Only the default location is made on demand; a --db in a folder
            # that does not exist is more likely a typo than a wish.
            if file_path == DEFAULT_DB_PATH.expanduser():
                try:
                    file_path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as error:
                    raise StoreError(
                        f"Cannot create the folder for {self.path}: {error.strerror}."
                    ) from None
            elif not file_path.parent.is_dir():
                raise StoreError(
                    f"The folder for {self.path} does not exist: create it first, "
                    "or choose another --db."
                )
            self.path = str(file_path)
            if file_path.is_file() and _is_cut_short(file_path):
                raise StoreError(_not_a_store(self.path))
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
                isolation_level=None,
            )
            # Reading the schema fails at once on a file that is not SQLite,
            # before anything could be written to it.
            conn.execute("select count(*) from sqlite_master").fetchone()

            conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.path != ":memory:":
                mode = conn.execute("pragma journal_mode = wal").fetchone()[0]
                if mode.lower() != "wal":
                    conn.execute("pragma journal_mode = wal")
            conn.execute("pragma synchronous = normal")
            conn.execute("pragma foreign_keys = on")
        except sqlite3.DatabaseError as error:
            raise StoreError(_describe_open_error(self.path, error)) from None
        return conn

    def migrate(self) -> list[str]:
        """Apply the migrations this store has not had yet; return their names."""
        try:
            if not self._pending_migrations():
                # Nothing to do: no write lock taken, no sqlite-utils loaded.
                return []
            import sqlite_utils

            db = sqlite_utils.Database(self.conn, execute_plugins=False)
            applied_now: list[str] = []
            with self._write():
                self.conn.execute(
                    "create table if not exists _migrations "
                    "(name text primary key, applied_at text)"
                )
                # Checked again under the write lock: another recorder may
                # have migrated the store in the meantime.
                for name, migration in self._pending_migrations():
                    migration(db)
                    self.conn.execute(
                        "insert into _migrations (name, applied_at) values (?, ?)",
                        [name, utc_now()],
                    )
                    applied_now.append(name)
        except sqlite3.DatabaseError as error:
            raise StoreError(_describe_open_error(self.path, error)) from None
        return applied_now

    def _pending_migrations(
        self,
    ) -> list[tuple[str, Callable[[sqlite_utils.Database], None]]]:
        has_table = self.conn.execute(
            "select 1 from sqlite_master where type = 'table' and name = '_migrations'"
        ).fetchone()
        done = set()
        if has_table:
            done = {row[0] for row in self.conn.execute("select name from _migrations")}
        return [(name, step) for name, step in MIGRATIONS if name not in done]

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> EvaluationStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Transactions -------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed write; inside :meth:`batch`, part of the batch's one."""
        with self._lock:
            if self._batch_depth:
                yield self.conn
                return
            # IMMEDIATE takes the write lock up front, so a busy store makes
            # this wait (up to the busy timeout) instead of failing half way.
            self.conn.execute("begin immediate")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("rollback")
                raise
            self.conn.execute("commit")

    @contextmanager
    def batch(self) -> Iterator[EvaluationStore]:
        """Group many writes into one transaction (for bulk loads and imports)."""
        with self._lock:
            if self._batch_depth == 0:
                self.conn.execute("begin immediate")
            self._batch_depth += 1
            try:
                yield self
            except BaseException:
                self._batch_depth -= 1
                if self._batch_depth == 0:
                    self.conn.execute("rollback")
                raise
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self.conn.execute("commit")

    # Writes --------------------------------------------------------------

    def start_run(
        self,
        *,
        consortium_id: str,
        trace_id: str | None,
        prompt: str,
        models: Sequence[dict[str, Any]],
        arbiter: str | None,
        judging_method: str,
        confidence_threshold: float,
        min_iterations: int,
        max_iterations: int,
        system: str | None = None,
        started_at: str | None = None,
    ) -> None:
        """Record that a run has started (``status='running'``)."""
        row = {
            "consortium_id": consortium_id,
            "trace_id": trace_id,
            "prompt": prompt,
            "system": system,
            "models": _json_or_none(list(models)),
            "arbiter": arbiter,
            "judging_method": judging_method,
            "confidence_threshold": confidence_threshold,
            "min_iterations": min_iterations,
            "max_iterations": max_iterations,
            "status": "running",
            "iteration_count": 0,
            "started_at": started_at or utc_now(),
            "process_id": os.getpid(),
            "hostname": self.hostname,
        }
        self._insert("runs", row)

    def finish_run(
        self,
        consortium_id: str,
        *,
        status: str,
        iteration_count: int,
        final_confidence: float | None = None,
        synthesis: str | None = None,
        error: str | None = None,
        finished_at: str | None = None,
        duration_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """Close a run with its final status and totals."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}")
        values = {
            "status": status,
            "iteration_count": iteration_count,
            "final_confidence": final_confidence,
            "synthesis": synthesis,
            "error": error,
            "finished_at": finished_at or utc_now(),
            "duration_ms": duration_ms,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        with self._lock:
            _execute(
                self.conn,
                f"update runs set {assignments} where consortium_id = :consortium_id",
                {**values, "consortium_id": consortium_id},
            )

    def record_model_call(
        self,
        *,
        request_id: str,
        consortium_id: str | None,
        iteration_id: int | None,
        role: str,
        model: str,
        prompt: str,
        response: str | None = None,
        system: str | None = None,
        instance: int | None = None,
        label: str | None = None,
        attempt: int = 1,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        duration_ms: float | None = None,
        started_at: str | None = None,
        finished_at: str | None = None,
        status: str = "ok",
        error: str | None = None,
    ) -> None:
        """Commit one model call (member or arbiter) as soon as it has returned."""
        self._insert(
            "model_calls",
            {
                "request_id": request_id,
                "consortium_id": consortium_id,
                "iteration_id": iteration_id,
                "role": role,
                "model": model,
                "instance": instance,
                "label": label,
                "attempt": attempt,
                "prompt": prompt,
                "system": system,
                "response": response,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "duration_ms": duration_ms,
                "started_at": started_at or utc_now(),
                "finished_at": finished_at or utc_now(),
                "status": status,
                "error": error,
            },
        )

    def store_evaluation(
        self,
        consortium_id: str,
        iteration_id: int,
        prompt_text: str,
        arbiter_model: str,
        evaluated_models: Sequence[str | dict[str, Any]],
        decision: dict[str, Any] | None,
        token_usage: dict[str, Any] | None = None,
        duration_ms: float | None = None,
        *,
        request_id: str | None = None,
        judging_method: str | None = None,
        raw_response: str | None = None,
        error: str | None = None,
        timestamp: str | None = None,
    ) -> int:
        """Store one arbiter decision and one ``model_performance`` row per member.

        :param evaluated_models: model names, or dicts with ``model`` and any of
            ``instance``, ``label``, ``request_id``, ``rank``, ``chosen``,
            ``input_tokens``, ``output_tokens``, ``tokens``, ``duration_ms`` and
            ``error`` for each member answer the arbiter saw.
        :param decision: the parsed decision (``confidence``, ``synthesis``,
            ``analysis``, ``dissent``, ``needs_iteration``,
            ``refinement_areas``, ``ranking``); ``None`` when it could not be
            parsed, in which case ``raw_response`` and ``error`` say why.
        :param token_usage: tokens by model, or the arbiter call's
            ``{"input": n, "output": m}``.
        :return: the new evaluation's ``id``.
        """
        decision = decision or {}
        timestamp = timestamp or utc_now()
        members = [_member_dict(member) for member in evaluated_models]
        confidence = decision.get("confidence")
        ranking = decision.get("ranking")
        arbiter_usage = token_usage if _is_call_usage(token_usage) else {}
        needs_iteration = decision.get("needs_iteration")
        evaluation = {
            "consortium_id": consortium_id,
            "request_id": request_id,
            "iteration_id": iteration_id,
            "timestamp": timestamp,
            "prompt_text": prompt_text,
            "arbiter_model": arbiter_model,
            "judging_method": judging_method,
            # The members whose answers the arbiter saw: a failed call is not one.
            "evaluated_models": _json_or_none(
                [m["model"] for m in members if not m.get("error")]
            ),
            "decision_json": _json_or_none(decision) if decision else None,
            "confidence": confidence,
            "synthesis": decision.get("synthesis"),
            "analysis": decision.get("analysis"),
            "dissent": decision.get("dissent"),
            "needs_iteration": None
            if needs_iteration is None
            else int(bool(needs_iteration)),
            "refinement_areas": _json_or_none(decision.get("refinement_areas")),
            "ranking": _json_or_none(ranking),
            "raw_response": raw_response,
            "token_usage_json": _json_or_none(token_usage),
            "input_tokens": arbiter_usage.get("input"),
            "output_tokens": arbiter_usage.get("output"),
            "duration_ms": duration_ms,
            "error": error,
        }
        model_tokens = token_usage if not arbiter_usage else {}
        # A failed evaluation judged nobody: its members get no performance
        # rows (the evaluation itself keeps who was shown and why it failed).
        judged_members = members if error is None else []
        with self._write() as conn:
            evaluation_id = self._insert_row(conn, "evaluations", evaluation)
            rows = [
                _performance_row(
                    member,
                    ranked_count=sum(m.get("rank") is not None for m in members),
                    evaluation_id=evaluation_id,
                    consortium_id=consortium_id,
                    iteration_id=iteration_id,
                    confidence=confidence,
                    model_tokens=model_tokens or {},
                    timestamp=timestamp,
                )
                for member in judged_members
            ]
            for row in rows:
                self._insert_row(conn, "model_performance", row)
        return evaluation_id

    def mark_interrupted(self, consortium_id: str, reason: str) -> bool:
        """Close a run that is still ``running`` as ``interrupted``."""
        with self._write() as conn:
            cursor = conn.execute(
                "update runs set status = 'interrupted', error = :reason, "
                "finished_at = :now, iteration_count = coalesce((select "
                "max(iteration_id) from model_calls where consortium_id = "
                ":consortium_id), 0) where consortium_id = :consortium_id "
                "and status = 'running'",
                {"reason": reason, "now": utc_now(), "consortium_id": consortium_id},
            )
            return cursor.rowcount > 0

    def mark_interrupted_runs(self) -> int:
        """Mark as ``interrupted`` the runs left ``running`` by a dead process.

        Returns how many runs were marked.

        Limitation: only processes on this host can be checked, so a run left
        ``running`` by a recorder on another machine stays ``running``.
        """
        with self._lock:
            candidates = self.conn.execute(
                "select distinct process_id from runs "
                "where status = 'running' and hostname = ?",
                [self.hostname],
            ).fetchall()
            dead = [
                process_id
                for (process_id,) in candidates
                if recorder_has_died(process_id, self.hostname)
            ]
            if not dead:
                return 0
            with self._write() as conn:
                cursor = conn.execute(
                    "update runs set status = 'interrupted', finished_at = ?, "
                    "error = coalesce(error, ?), iteration_count = coalesce(("
                    "select max(iteration_id) from model_calls where model_calls."
                    "consortium_id = runs.consortium_id), 0) "
                    "where status = 'running' and hostname = ? "
                    "and process_id in (select value from json_each(?))",
                    [utc_now(), ABANDONED_RUN_ERROR, self.hostname, json.dumps(dead)],
                )
                return cursor.rowcount

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        # One statement is its own transaction: no BEGIN/COMMIT round trips.
        with self._lock:
            self._insert_row(self.conn, table, row)

    @staticmethod
    def _insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
        sql = queries.insert_sql(table, tuple(row))
        cursor = _execute(conn, sql, tuple(row.values()))
        return cursor.lastrowid or 0

    # Reads ---------------------------------------------------------------

    def query(
        self, sql: str, parameters: dict[str, Any] | Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        """Run a read-only query and return its rows as dicts."""
        with self._lock:
            cursor = self.conn.execute(sql, parameters)
            columns = [description[0] for description in cursor.description]
            return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def iter_query(
        self,
        sql: str,
        parameters: dict[str, Any] | Sequence[Any] = (),
        *,
        as_tuples: bool = False,
    ) -> Iterator[Any]:
        """Like :meth:`query`, but yields rows as they are read.

        Uses its own connection, so a long export neither holds the shared
        connection nor keeps all rows in memory. ``as_tuples`` yields each row
        as a tuple in the query's column order instead of a dict.
        """
        if self.path == ":memory:":
            for row in self.query(sql, parameters):
                yield tuple(row.values()) if as_tuples else row
            return
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            cursor = conn.execute(sql, parameters)
            columns = [description[0] for description in cursor.description]
            while batch := cursor.fetchmany(EXPORT_BATCH_ROWS):
                if as_tuples:
                    yield from batch
                else:
                    for row in batch:
                        yield dict(zip(columns, row))
        finally:
            conn.close()

    def get_leaderboard(
        self,
        limit: int | None = 10,
        since: str | None = None,
        *,
        models: Iterable[str] | None = None,
        sort: str = queries.DEFAULT_LEADERBOARD_SORT,
    ) -> list[dict[str, Any]]:
        """One dict per model: ``model``, ``evaluations``, ``avg_confidence``, ...

        See :data:`recorder.queries.LEADERBOARD_COLUMNS` for every key.

        :param limit: at most this many models; ``None`` or 0 for all.
        :param since: an ISO 8601 date or time (see
            :func:`recorder.queries.normalize_since`); ``ValueError`` otherwise.
        """
        sql = queries.leaderboard_sql(sort=sort, limit=bool(limit))
        parameters = {
            "since": _since(since),
            "models": json.dumps(list(models)) if models else None,
            "limit": limit,
        }
        return self.query(sql, parameters)

    def list_runs(
        self, limit: int | None = 5, status: str | None = None
    ) -> list[dict[str, Any]]:
        """The most recent runs first, one dict each (see ``RECENT_RUNS_SQL``)."""
        return self.query(
            queries.RECENT_RUNS_SQL, {"limit": limit or -1, "status": status}
        )

    def find_run_ids(self, consortium_id_or_prefix: str) -> list[str]:
        """The run IDs equal to, or starting with, the given text (at most 10)."""
        rows = self.query(
            queries.RUN_IDS_BY_PREFIX_SQL, {"prefix": consortium_id_or_prefix}
        )
        exact = [
            row["consortium_id"]
            for row in rows
            if row["consortium_id"] == (consortium_id_or_prefix)
        ]
        return exact or [row["consortium_id"] for row in rows]

    def get_run(self, consortium_id: str) -> dict[str, Any] | None:
        """The whole record of one run as a tree, or ``None`` if unknown.

        ``run`` → ``iterations`` (each with ``model_calls`` and ``evaluation``).
        """
        return queries.run_tree(self.query, consortium_id)

    def iter_training_examples(
        self, since: str | None = None, min_confidence: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield one training example per completed run, oldest first."""
        rows = self.iter_query(
            queries.TRAINING_EXPORT_SQL,
            {"since": _since(since), "min_confidence": min_confidence},
        )
        for row in rows:
            yield queries.training_example(row)

    def iter_training_lines(
        self, since: str | None = None, min_confidence: float | None = None
    ) -> Iterator[str]:
        """Yield each training example as its JSONL line (without the newline)."""
        rows = self.iter_query(
            queries.TRAINING_EXPORT_SQL,
            {"since": _since(since), "min_confidence": min_confidence},
            as_tuples=True,
        )
        for row in rows:
            yield queries.training_line_from_values(row)

    def count_rows(self, table: str) -> int:
        if table not in queries.TABLES:
            raise ValueError(f"Unknown table: {table}")
        with self._lock:
            return self.conn.execute(f"select count(*) from [{table}]").fetchone()[0]


def _is_cut_short(path: pathlib.Path) -> bool:
    """Whether a file is shorter than its SQLite header says, or not SQLite.

    SQLite reads a cut copy's first page as an empty schema, so without this
    check migrations would write a new, empty store over what is left.

    The header is read through an immutable SQLite connection, which writes
    nothing (no -wal or -shm) and, unlike opening the file with Python, keeps
    the locks of other connections in this process (Datasette's among them):
    closing any other descriptor of a database file would drop them. A file
    with a journal or WAL beside it is in use (another recorder may be
    creating it this very moment) and is not probed: an immutable read of a
    file being written can fail, and a cut copy has no such companions.
    """
    try:
        if path.stat().st_size == 0:
            return False
        for suffix in ("-wal", "-shm", "-journal"):
            if path.with_name(path.name + suffix).exists():
                return False
        probe = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            page_size = probe.execute("pragma page_size").fetchone()[0]
            page_count = probe.execute("pragma page_count").fetchone()[0]
        finally:
            probe.close()
    except OSError:
        return False
    except sqlite3.DatabaseError:
        # Not SQLite at all, or a header promising pages the file lacks:
        # either way not a store to write to.
        return True
    return page_count * page_size > path.stat().st_size


def _not_a_store(path: str) -> str:
    return f"{path} is not a SQLite database (or it is corrupt); it was left untouched."


def _since(since: str | None) -> str | None:
    return queries.normalize_since(since) if since else None


def _describe_open_error(path: str, error: sqlite3.DatabaseError) -> str:
    message = str(error)
    if "not a database" in message or "malformed" in message:
        return _not_a_store(path)
    if "unable to open" in message or "readonly" in message:
        return f"Cannot open {path} for writing: check the path and its permissions."
    return f"Cannot use {path}: {message}."


def _member_dict(member: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(member, str):
        return {"model": member}
    return dict(member)


def _is_call_usage(token_usage: dict[str, Any] | None) -> bool:
    return bool(token_usage) and set(token_usage) <= {"input", "output", "details"}


def _performance_row(
    member: dict[str, Any],
    *,
    ranked_count: int,
    evaluation_id: int,
    consortium_id: str,
    iteration_id: int,
    confidence: float | None,
    model_tokens: dict[str, Any],
    timestamp: str,
) -> dict[str, Any]:
    input_tokens = member.get("input_tokens")
    output_tokens = member.get("output_tokens")
    tokens = member.get("tokens")
    if tokens is None and (input_tokens is not None or output_tokens is not None):
        tokens = (input_tokens or 0) + (output_tokens or 0)
    if tokens is None:
        tokens = model_tokens.get(member["model"])
    rank = member.get("rank")
    normalized_rank = None
    if rank is not None:
        normalized_rank = 0.0 if ranked_count <= 1 else (rank - 1) / (ranked_count - 1)
    error = member.get("error")
    return {
        "evaluation_id": evaluation_id,
        "consortium_id": consortium_id,
        "iteration_id": iteration_id,
        "request_id": member.get("request_id"),
        "model": member["model"],
        "instance": member.get("instance"),
        "label": member.get("label"),
        "confidence": None if error else confidence,
        "token_usage": tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "duration_ms": member.get("duration_ms"),
        "rank": rank,
        "normalized_rank": normalized_rank,
        "chosen": int(bool(member.get("chosen", rank == 1))),
        "error": error,
        "timestamp": timestamp,
        "duration_bucket_ms": rollups.duration_bucket(member.get("duration_ms")),
    }
