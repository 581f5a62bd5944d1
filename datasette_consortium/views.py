"""The run-detail page, ``/<database>/-/consortium/runs/<consortium_id>``.

The page and its ``.json`` twin are built from ``recorder.queries.run_tree``,
the same tree ``consortium-record run-info`` prints.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any

from datasette.utils import tilde_decode
from datasette.utils.asgi import NotFound, Request, Response

from recorder import queries
from recorder.evaluation_store import ABANDONED_RUN_ERROR, recorder_has_died

from .compat import ensure_can_view_table
from .timeline import timeline_calls, timeline_drawing

if TYPE_CHECKING:
    from datasette.app import Datasette

RUN_PAGE_ROUTE = (
    r"^/(?P<database>[^/]+)/-/consortium/runs/"
    r"(?P<consortium_id>[^/]+?)(?:\.(?P<format>json))?$"
)

# Databases already seen to hold the recorder's tables, per Datasette instance.
_consortium_databases: weakref.WeakKeyDictionary[Datasette, set[str]] = (
    weakref.WeakKeyDictionary()
)


async def is_consortium_database(datasette: Datasette, database: str) -> bool:
    """Whether this database holds all of the recorder's tables."""
    known = _consortium_databases.setdefault(datasette, set())
    if database in known:
        return True
    try:
        db = datasette.get_database(database)
    except KeyError:
        return False
    try:
        tables = set(await db.table_names())
    except sqlite3.DatabaseError:
        return False
    if set(queries.TABLES) <= tables:
        known.add(database)
        return True
    return False


def known_consortium_database(datasette: Datasette, database: str) -> bool:
    """Whether ``is_consortium_database`` has already said yes (no query)."""
    return database in _consortium_databases.get(datasette, ())


def run_path(datasette: Datasette, database: str, consortium_id: str) -> str:
    """The URL path of a run's page (add ``.json`` for its JSON)."""
    quoted = urllib.parse.quote(str(consortium_id), safe="")
    return f"{datasette.urls.database(database)}/-/consortium/runs/{quoted}"


def _json_error(message: str, status: int) -> Response:
    return Response.json(
        {"ok": False, "error": message, "status": status, "title": None},
        status=status,
    )


def _not_found(message: str, as_json: bool) -> Response:
    if as_json:
        return _json_error(message, 404)
    raise NotFound(message)


async def run_page(datasette: Datasette, request: Request) -> Response:
    as_json = request.url_vars.get("format") == "json"
    route = tilde_decode(request.url_vars["database"])
    consortium_id = urllib.parse.unquote(request.url_vars["consortium_id"])
    try:
        database = datasette.get_database(route=route).name
    except KeyError:
        return _not_found(f"There is no database called {route}.", as_json)
    if not await is_consortium_database(datasette, database):
        return _not_found(
            f"The database {database} does not hold consortium runs.", as_json
        )
    for table in queries.TABLES:
        await ensure_can_view_table(datasette, request.actor, database, table)

    tree = await _load_run(datasette, database, consortium_id)
    if tree is None:
        return _not_found(
            f"No consortium run has the ID {consortium_id} in {database}.", as_json
        )
    settle_abandoned_run(tree["run"])
    calls = timeline_calls(tree)
    if as_json:
        return Response.json(
            {"ok": True, "database": database, **tree, "timeline": calls},
            default=str,
        )
    context = _page_context(datasette, database, tree, calls)
    return Response.html(
        await datasette.render_template("consortium_run.html", context, request=request)
    )


def settle_abandoned_run(run: dict[str, Any]) -> None:
    """Show a ``running`` run whose recorder died (on this host) as interrupted.

    The store marks such runs when a recorder next opens it; Datasette only
    reads, so the page says what that will record, and keeps the stored
    status in ``recorded_status``.
    """
    if run.get("status") == "running" and recorder_has_died(
        run.get("process_id"), run.get("hostname")
    ):
        run["recorded_status"] = "running"
        run["status"] = "interrupted"
        run["error"] = run.get("error") or ABANDONED_RUN_ERROR


async def _load_run(
    datasette: Datasette, database: str, consortium_id: str
) -> dict[str, Any] | None:
    def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
        def query(sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
            cursor = conn.execute(sql, parameters)
            columns = [description[0] for description in cursor.description]
            return [dict(zip(columns, row)) for row in cursor.fetchall()]

        return queries.run_tree(query, consortium_id)

    return await datasette.get_database(database).execute_fn(read)


def _model_counts(models: Any) -> str:
    """``[{"model": "k2", "count": 2}, ...]`` as ``k2 ×2, ...``; else as stored."""
    if not isinstance(models, list) or not all(
        isinstance(entry, dict) and "model" in entry for entry in models
    ):
        return _pretty(models)
    return ", ".join(
        str(entry["model"])
        + (f" ×{entry['count']}" if entry.get("count", 1) != 1 else "")
        for entry in models
    )


def _pretty(value: Any) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, indent=2, ensure_ascii=False)


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def _page_context(
    datasette: Datasette,
    database: str,
    tree: dict[str, Any],
    calls: list[dict[str, Any]],
) -> dict[str, Any]:
    run = tree["run"]
    iterations = []
    for iteration in tree["iterations"]:
        evaluation = iteration["evaluation"]
        iterations.append(
            {
                "iteration_id": iteration["iteration_id"],
                "members": [
                    call
                    for call in iteration["model_calls"]
                    if call.get("role") != "arbiter"
                ],
                "arbiter_calls": [
                    call
                    for call in iteration["model_calls"]
                    if call.get("role") == "arbiter"
                ],
                "evaluation": evaluation,
                "refinement_areas": _as_list(
                    evaluation and evaluation.get("refinement_areas")
                ),
            }
        )
    settings = [
        ("Status", run.get("status")),
        ("Arbiter", run.get("arbiter")),
        ("Judging method", run.get("judging_method")),
        ("Models", _model_counts(run.get("models"))),
        ("Confidence threshold", run.get("confidence_threshold")),
        (
            "Iterations (min / max)",
            f"{run.get('min_iterations')} / {run.get('max_iterations')}",
        ),
        ("Iterations run", run.get("iteration_count")),
        ("Final confidence", run.get("final_confidence")),
        ("Started", run.get("started_at")),
        ("Finished", run.get("finished_at")),
        ("Duration (ms)", run.get("duration_ms")),
        (
            "Input / output tokens",
            f"{run.get('input_tokens')} / {run.get('output_tokens')}",
        ),
        ("Trace ID", run.get("trace_id")),
    ]
    consortium_id = run["consortium_id"]
    return {
        "database": database,
        "database_url": datasette.urls.database(database),
        "runs_url": datasette.urls.table(database, "runs"),
        "recent_runs_url": f"{datasette.urls.database(database)}/recent_runs",
        "json_url": run_path(datasette, database, consortium_id) + ".json",
        "run": run,
        "settings": settings,
        "iterations": iterations,
        "timeline": timeline_drawing(calls),
    }
