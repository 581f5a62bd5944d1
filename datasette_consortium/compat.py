"""What differs between Datasette 0.65 and the 1.0 alpha line, in one place.

0.65 checks permissions with ``ensure_permissions`` (a cascade of
instance, database and table) and takes canned queries from the
``canned_queries`` hook. The 1.0 alphas check an *action* on a *resource*
with ``ensure_permission`` and keep queries in the internal database, added
with ``datasette.add_query``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from datasette.version import __version__

if TYPE_CHECKING:
    from datasette.app import Datasette
    from datasette.utils.asgi import Response

# The 1.0 alphas: stored queries, actions on resources, and renderers that
# are also given the query's ``error``.
DATASETTE_1 = __version__.split(".")[0] == "1"


async def ensure_can_view_table(
    datasette: Datasette, actor: dict[str, Any] | None, database: str, table: str
) -> None:
    """Raise Datasette's ``Forbidden`` unless the actor may see this table."""
    if DATASETTE_1:
        from datasette.resources import TableResource

        await datasette.ensure_permission(
            action="view-table", resource=TableResource(database, table), actor=actor
        )
    else:
        await datasette.ensure_permissions(
            actor,
            [
                ("view-table", (database, table)),
                ("view-database", database),
                "view-instance",
            ],
        )


def actor_cookie(datasette: Datasette, actor: dict[str, Any] | None) -> dict[str, str]:
    """Cookies that make an internal request act as ``actor`` (both versions)."""
    if not actor:
        return {}
    return {"ds_actor": datasette.sign({"a": actor}, "actor")}


async def add_canned_queries(
    datasette: Datasette, database: str, canned_queries: dict[str, Any]
) -> None:
    """Store the plugin's queries for ``database`` (1.0 alphas only)."""
    for name, query in canned_queries.items():
        await datasette.add_query(
            database,
            name,
            query.sql,
            title=query.title,
            description=query.description,
            parameters=list(query.parameters),
            is_trusted=True,
            source="plugin",
        )


RENDERER_ARGUMENTS = (
    "datasette",
    "request",
    "database",
    "columns",
    "rows",
    "sql",
    "query_name",
    "table",
    "view_name",
)


def output_renderer(
    render: Callable[..., Awaitable[Response]],
) -> Callable[..., Awaitable[Response]]:
    """``render`` taking exactly the arguments this Datasette gives renderers.

    Datasette passes a renderer the arguments its signature names and fails
    on a name it does not know; only the 1.0 alphas pass ``error``.
    """
    names = RENDERER_ARGUMENTS + (("error",) if DATASETTE_1 else ())

    async def call(*arguments: Any) -> Response:
        return await render(**dict(zip(names, arguments)))

    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for name in names
        ]
    )
    return call


async def ensure_can_view_query(
    datasette: Datasette, actor: dict[str, Any] | None, database: str, query: str
) -> None:
    """Raise Datasette's ``Forbidden`` unless the actor may run this canned query."""
    if DATASETTE_1:
        from datasette.resources import QueryResource

        await datasette.ensure_permission(
            action="view-query", resource=QueryResource(database, query), actor=actor
        )
    else:
        await datasette.ensure_permissions(
            actor,
            [
                ("view-query", (database, query)),
                ("view-database", database),
                "view-instance",
            ],
        )
