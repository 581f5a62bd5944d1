"""Datasette plugin for the consortium recorder's ``evaluations.db``.

Adds, on every database that holds the recorder's tables: canned queries
(``leaderboard``, ``recent_runs``, ``token_usage_by_model``,
``failed_evaluations``, ``training_export``), a page per run at
``/<database>/-/consortium/runs/<consortium_id>`` with a ``.json`` twin, links
from every ``consortium_id`` to that page, and a ``.jsonl`` renderer for any
table or query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import markupsafe
from datasette import hookimpl

from . import compat, runs_table
from .canned import CANNED_QUERIES
from .middleware import check_canned_parameters
from .renderer import EXPORT_ROUTE, export_view, render_jsonl
from .upgrade import bring_up_to_date
from .views import RUN_PAGE_ROUTE, is_consortium_database, run_page, run_path

if TYPE_CHECKING:
    from datasette.app import Datasette


def _canned_query_config(datasette: Datasette) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "sql": query.sql,
            "title": query.title,
            "description": query.description,
            "params": list(query.parameters),
        }
        for name, query in CANNED_QUERIES.items()
    }


@hookimpl
def canned_queries(datasette: Datasette, database: str) -> Any:
    async def inner() -> dict[str, dict[str, Any]]:
        if await is_consortium_database(datasette, database):
            return _canned_query_config(datasette)
        return {}

    return inner


@hookimpl
def startup(datasette: Datasette) -> Any:
    async def inner() -> None:
        for database in list(datasette.databases):
            found = await is_consortium_database(datasette, database)
            if found:
                await bring_up_to_date(datasette.get_database(database))
            if found and compat.DATASETTE_1:
                await compat.add_canned_queries(datasette, database, CANNED_QUERIES)

    return inner


@hookimpl
def prepare_jinja2_environment(env: Any, datasette: Datasette) -> None:
    runs_table.install(env, datasette)


@hookimpl
def extra_template_vars(database: str | None, datasette: Datasette) -> Any:
    async def inner() -> dict[str, Any]:
        # Learn whether this is a consortium database before the page is drawn,
        # so the runs table template can tell without a query of its own.
        if database:
            await is_consortium_database(datasette, database)
        return {}

    return inner


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(RUN_PAGE_ROUTE, run_page), (EXPORT_ROUTE, export_view)]


@hookimpl
def register_output_renderer(datasette: Datasette) -> dict[str, Any]:
    return {"extension": "jsonl", "render": compat.output_renderer(render_jsonl)}


@hookimpl
def asgi_wrapper(datasette: Datasette) -> Any:
    return lambda app: check_canned_parameters(app, datasette)


@hookimpl
def render_cell(value: Any, column: str, database: str, datasette: Datasette) -> Any:
    if column != "consortium_id" or not isinstance(value, str) or not value:
        return None

    async def inner() -> markupsafe.Markup | None:
        if not await is_consortium_database(datasette, database):
            return None
        return markupsafe.Markup('<a href="{}">{}</a>').format(
            run_path(datasette, database, value), value
        )

    return inner
