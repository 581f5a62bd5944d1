"""Checks the parameters of a consortium database's pages before Datasette.

Datasette would run ``since=yesterday`` and return nothing, or turn a bad
``models`` list into an SQL error. This wrapper answers such requests with a
400 and a sentence saying what a good value looks like, and hands the query
``since`` in the stored timestamp form, as the CLI does (so
``since=2025-11-01T02:00+02:00`` means midnight UTC in both). It also
refuses a sort by a column the recorder's tables do not have, which
Datasette 0.65 would answer with a 500, and sends whole ``.jsonl`` exports
of the canned queries to ``renderer.export_view``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from datasette.utils import tilde_decode
from datasette.utils.asgi import Request, Response

from recorder import queries

from .canned import CANNED_QUERIES, InvalidParameter, check_parameters
from .renderer import export_path
from .views import is_consortium_database

if TYPE_CHECKING:
    from datasette.app import Datasette

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


def check_canned_parameters(app: App, datasette: Datasette) -> App:
    async def checked(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            outcome = await _check(datasette, scope, receive)
            if isinstance(outcome, Response):
                await outcome.asgi_send(send)
                return
            scope = outcome
        await app(scope, receive, send)

    return checked


_PAGE_PATH = re.compile(
    r"^/(?P<database>[^/]+)/(?P<name>[^/]+?)(?:\.(?P<format>\w+))?$"
)


async def _check(datasette: Datasette, scope: Scope, receive: Any) -> Scope | Response:
    """A 400 for a malformed parameter, else the scope to pass on."""
    path = scope["path"]
    base_url = datasette.setting("base_url")
    if base_url != "/" and path.startswith(base_url):
        path = "/" + path[len(base_url) :]
    match = _PAGE_PATH.match(path)
    if match is None:
        return scope
    route, name = match["database"], tilde_decode(match["name"])
    output_format = match["format"] or "html"
    if name not in CANNED_QUERIES and name not in queries.TABLES:
        return scope
    try:
        database = datasette.get_database(route=tilde_decode(route)).name
    except KeyError:
        return scope
    if not await is_consortium_database(datasette, database):
        return scope

    query_string = scope.get("query_string", b"").decode("latin-1")
    pairs = urllib.parse.parse_qsl(query_string, keep_blank_values=True)
    arguments: dict[str, str] = {}
    for key, value in pairs:
        arguments.setdefault(key, value)
    try:
        if name in queries.TABLES:
            await _check_sort(datasette, database, name, pairs)
            return scope
        checked = check_parameters(name, arguments)
    except InvalidParameter as invalid:
        return await _bad_request(
            datasette, scope, receive, str(invalid), output_format
        )

    pairs = [(key, checked.get(key, value)) for key, value in pairs]
    scope = {**scope, "query_string": urllib.parse.urlencode(pairs).encode("ascii")}
    if output_format == "jsonl":
        # Whole exports skip Datasette's one-page run of the query.
        path = export_path(base_url, route, name)
        raw_path = urllib.parse.quote(path, safe="/~-._").encode("ascii")
        scope.update(path=path, raw_path=raw_path)
    return scope


async def _check_sort(
    datasette: Datasette, database: str, table: str, pairs: list[tuple[str, str]]
) -> None:
    # Datasette 0.65 answers a sort by an unknown column with a 500.
    columns = set(await datasette.get_database(database).table_columns(table))
    for key, value in pairs:
        if key in ("_sort", "_sort_desc") and value not in columns | {"rowid"}:
            raise InvalidParameter(
                f"Cannot sort {table} by {value!r}: it has no such column."
            )


async def _bad_request(
    datasette: Datasette, scope: Scope, receive: Any, message: str, output_format: str
) -> Response:
    title = "Invalid parameter"
    if output_format == "json":
        return Response.json(
            {"ok": False, "error": message, "status": 400, "title": title},
            status=400,
        )
    if output_format != "html":
        return Response.text(f"{message}\n", status=400)
    # This runs before Datasette's own middleware, so there is no CSRF token
    # yet; an error page has no form that would need one.
    request = Request({**scope, "csrftoken": lambda: ""}, receive)
    html = await datasette.render_template(
        "error.html",
        {"ok": False, "error": message, "status": 400, "title": title},
        request=request,
    )
    return Response.html(html, status=400)
