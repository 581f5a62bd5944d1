"""The ``.jsonl`` output renderer: any table or query as one JSON object a line.

Datasette hands a renderer at most ``max_returned_rows`` rows, so an export
does not use them. Instead it reads every row again, a batch at a time, and
writes each batch to the response before reading the next:

- the plugin's own canned queries (``/<database>/training_export.jsonl``
  and the rest) are answered by :func:`export_view`, before Datasette runs
  the query for a page at all (the parameter check in ``middleware.py``
  sends them there): it checks ``view-query`` as Datasette would, then runs
  the query on its own read-only connection and reads its cursor
  ``BATCH_SIZE`` rows at a time in a worker thread. This SQL is the
  plugin's, so it runs without ``sql_time_limit_ms``: an export of a large
  store may take longer than a page is allowed to.
- any other query (canned or arbitrary SQL) goes through this renderer and
  is run again the same way, each batch within ``sql_time_limit_ms``.
- a *table* (with any filters, sort and search in the URL) is paged through
  Datasette's own JSON for it, following ``next`` as its CSV streaming does,
  as the same actor, so filters and permissions apply exactly as on the page.

Memory therefore stays at one batch, however many rows there are. Setting
``allow_csv_stream`` off (Datasette's switch for downloads beyond
``max_returned_rows``) limits exports to the first page too.

For the ``training_export`` canned query the lines are
``recorder.queries.training_line(row)``, exactly what
``consortium-record export-training`` writes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import sqlite3
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from datasette.utils import derive_named_parameters, tilde_decode
from datasette.utils.asgi import NotFound, Request, Response

from recorder import queries

from .canned import CANNED_QUERIES, InvalidParameter, check_parameters
from .compat import actor_cookie, ensure_can_view_query
from .views import is_consortium_database

if TYPE_CHECKING:
    from datasette.app import Datasette
    from datasette.database import Database

CONTENT_TYPE = "application/x-ndjson; charset=utf-8"
BATCH_SIZE = 500
PROGRESS_STEPS = 1000
# Arguments that shape one JSON page; the export sets its own.
_PAGE_ARGUMENTS = ("_shape", "_size", "_next", "_nl", "_extra", "_facet", "_dl")


class ExportError(Exception):
    """The export cannot start; the message is a sentence for a 400."""


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")}
    return str(value)


def _as_dict(columns: list[str], row: Any) -> dict[str, Any]:
    if hasattr(row, "keys"):
        return {key: row[key] for key in row.keys()}
    return dict(zip(columns, row))


def row_line(row: dict[str, Any]) -> str:
    """One JSONL line (without the newline) for a row as a dict."""
    return json.dumps(row, ensure_ascii=False, default=_json_default)


class StreamingResponse(Response):
    """A response whose body is written chunk by chunk as it is produced."""

    def __init__(
        self,
        chunks: AsyncIterator[str],
        *,
        headers: dict[str, str] | None = None,
        content_type: str = CONTENT_TYPE,
    ) -> None:
        super().__init__(None, status=200, headers=headers, content_type=content_type)
        self._chunks = chunks

    async def asgi_send(self, send: Callable[[dict[str, Any]], Any]) -> None:
        headers = {**self.headers, "content-type": self.content_type}
        raw_headers = [
            [key.encode("latin-1"), value.encode("latin-1")]
            for key, value in headers.items()
        ]
        for cookie in self._set_cookie_headers:
            raw_headers.append([b"set-cookie", cookie.encode("latin-1")])
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": raw_headers,
            }
        )
        async for chunk in self._chunks:
            await send(
                {
                    "type": "http.response.body",
                    "body": chunk.encode("utf-8"),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b""})


# Queries ----------------------------------------------------------------------


def open_read_connection(db: Database) -> sqlite3.Connection | None:
    """A new read-only connection to ``db``, or ``None`` for a private memory one."""
    if db.path and not db.is_memory:
        mode = "mode=ro" if db.is_mutable else "immutable=1"
        uri = f"{pathlib.Path(db.path).resolve().as_uri()}?{mode}"
    elif db.memory_name:
        uri = f"file:{urllib.parse.quote(db.memory_name)}?mode=memory&cache=shared"
    else:
        return None
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    conn.execute("pragma query_only = 1")
    return conn


class QueryCursor:
    """Reads a query's rows in batches, each batch under a time limit."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        sql: str,
        params: dict[str, Any],
        limit_ms: int | None,
    ) -> None:
        self.conn = conn
        self.sql = sql
        self.params = params
        self.limit_ms = limit_ms
        self.cursor: sqlite3.Cursor | None = None
        self.columns: list[str] = []
        self._deadline = 0.0
        if limit_ms is not None:
            conn.set_progress_handler(self._past_deadline, PROGRESS_STEPS)

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def fetch(self) -> list[tuple[Any, ...]]:
        """The next batch of rows (empty when done); runs in a worker thread."""
        if self.limit_ms is not None:
            self._deadline = time.monotonic() + self.limit_ms / 1000
        if self.cursor is None:
            self.cursor = self.conn.execute(self.sql, self.params)
            self.columns = [description[0] for description in self.cursor.description]
        return self.cursor.fetchmany(BATCH_SIZE)

    def close(self) -> None:
        self.conn.close()


async def _query_parameters(
    db: Database, sql: str, request: Request
) -> dict[str, Any] | None:
    names = await derive_named_parameters(db, sql)
    # Limitation: magic parameters (:_actor_id, :_now_epoch ...) are resolved
    # by Datasette's query view only; such queries export the page it read.
    if any(name.startswith("_") for name in names):
        return None
    return {name: request.args.get(name) or "" for name in names}


async def _query_lines(
    db: Database,
    sql: str,
    params: dict[str, Any],
    line: Callable[[dict[str, Any]], str],
    limit_ms: int | None,
    max_rows: int | None = None,
) -> AsyncIterator[str]:
    conn = open_read_connection(db)
    if conn is None:
        # Limitation: a private in-memory database cannot be opened twice;
        # Datasette's own (capped) execution is the only way to read it.
        results = await db.execute(sql, params)
        columns = list(results.columns)
        return _single_chunk([line(dict(zip(columns, row))) for row in results.rows])
    reader = QueryCursor(conn, sql, params, limit_ms)
    loop = asyncio.get_running_loop()
    try:
        first = await loop.run_in_executor(None, reader.fetch)
    except sqlite3.Error as error:
        reader.close()
        raise ExportError(f"The export query failed: {error}.") from None

    if line is queries.training_line:
        # The training export's columns come in a known order: no dicts needed.
        def format_batch(batch: list[tuple[Any, ...]]) -> str:
            return "".join(
                queries.training_line_from_values(row) + "\n" for row in batch
            )
    else:

        def format_batch(batch: list[tuple[Any, ...]]) -> str:
            return "".join(line(dict(zip(reader.columns, row))) + "\n" for row in batch)

    async def chunks() -> AsyncIterator[str]:
        batch, remaining = first, max_rows
        following: asyncio.Future[list[tuple[Any, ...]]] | None = None
        try:
            while batch:
                if remaining is not None:
                    batch, remaining = batch[:remaining], remaining - len(batch)
                if remaining is not None and remaining <= 0:
                    yield format_batch(batch)
                    return
                # SQLite reads the next batch (without the GIL) while this
                # one is turned into lines.
                following = loop.run_in_executor(None, reader.fetch)
                yield format_batch(batch)
                batch = await following
                following = None
        finally:
            if following is not None:
                # The client left mid-export: let the read finish before the
                # connection it uses is closed.
                await asyncio.gather(following, return_exceptions=True)
            reader.close()

    return chunks()


async def _single_chunk(lines: list[str]) -> AsyncIterator[str]:
    if lines:
        yield "".join(line + "\n" for line in lines)


# Tables -----------------------------------------------------------------------


def _page_url(
    datasette: Datasette, database: str, table: str, request: Request, next_token: str
) -> str:
    arguments = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(
            request.query_string, keep_blank_values=True
        )
        if not key.startswith(_PAGE_ARGUMENTS)
    ]
    arguments += [
        ("_shape", "objects"),
        ("_size", "max"),
        ("_nocount", "1"),
        ("_nofacet", "1"),
        ("_nosuggest", "1"),
    ]
    if next_token:
        arguments.append(("_next", next_token))
    path = datasette.urls.table(database, table, format="json")
    return f"{path}?{urllib.parse.urlencode(arguments)}"


async def _table_lines(
    datasette: Datasette, database: str, table: str, request: Request
) -> AsyncIterator[str]:
    headers = {}
    cookies = actor_cookie(datasette, request.actor)
    if cookies:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())

    async def fetch_page(next_token: str) -> tuple[list[dict[str, Any]], str]:
        url = _page_url(datasette, database, table, request, next_token)
        response = await datasette.client.get(url, headers=headers)
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200 or "rows" not in data:
            message = data.get("error") or "; ".join(data.get("errors") or [])
            raise ExportError(message or f"Reading {table} failed.")
        return data["rows"], data.get("next") or ""

    first_rows, first_next = await fetch_page(request.args.get("_next") or "")

    # Limitation: once the first lines are sent the status is 200, so a page
    # that fails later (the database going away, a time limit) can only end
    # the response early; the client sees an incomplete chunked transfer.
    async def chunks() -> AsyncIterator[str]:
        rows, next_token = first_rows, first_next
        while True:
            if rows:
                yield "".join(row_line(row) + "\n" for row in rows)
            if not next_token:
                return
            rows, next_token = await fetch_page(next_token)

    return chunks()


# The renderer -------------------------------------------------------------------


async def render_jsonl(
    datasette: Datasette,
    request: Request,
    database: str,
    columns: list[str],
    rows: list[Any],
    sql: str | None = None,
    query_name: str | None = None,
    table: str | None = None,
    view_name: str | None = None,
    error: str | None = None,
) -> Response:
    """Datasette's ``render`` callback for the ``jsonl`` extension."""
    if error:
        return Response.text(f"{error}\n", status=400)
    headers = {}
    if request.args.get("_dl"):
        name = query_name or table or database
        headers["content-disposition"] = f'attachment; filename="{name}.jsonl"'

    page = [row_line(_as_dict(columns, row)) for row in rows]
    streaming = datasette.setting("allow_csv_stream") and view_name != "row"
    try:
        if not streaming:
            chunks = _single_chunk(page)
        elif table is not None and query_name is None:
            chunks = await _table_lines(datasette, database, table, request)
        else:
            db = datasette.get_database(database)
            params = await _query_parameters(db, sql or "", request)
            if params is None:
                chunks = _single_chunk(page)
            else:
                chunks = await _query_lines(
                    db,
                    sql or "",
                    params,
                    row_line,
                    datasette.setting("sql_time_limit_ms"),
                )
    except ExportError as export_error:
        return Response.text(f"{export_error}\n", status=400)
    return StreamingResponse(chunks, headers=headers)


# The plugin's canned queries ---------------------------------------------------

EXPORT_ROUTE = r"^/-/consortium/export/(?P<database>[^/]+)/(?P<query>\w+)\.jsonl$"


def export_path(base_url: str, database_route: str, query_name: str) -> str:
    """Where ``middleware.py`` sends ``/<database>/<query>.jsonl`` requests."""
    return f"{base_url}-/consortium/export/{database_route}/{query_name}.jsonl"


async def export_view(datasette: Datasette, request: Request) -> Response:
    """Every row of one of the plugin's canned queries, as JSON lines."""
    route = tilde_decode(request.url_vars["database"])
    query_name = request.url_vars["query"]
    try:
        database = datasette.get_database(route=route).name
    except KeyError:
        raise NotFound(f"There is no database called {route}.") from None
    query = CANNED_QUERIES.get(query_name)
    if query is None or not await is_consortium_database(datasette, database):
        raise NotFound(f"{database} has no canned query called {query_name}.")
    await ensure_can_view_query(datasette, request.actor, database, query_name)
    arguments = {key: request.args.get(key) or "" for key in query.parameters}
    try:
        params = {**arguments, **check_parameters(query_name, arguments)}
    except InvalidParameter as invalid:
        return Response.text(f"{invalid}\n", status=400)

    line = queries.training_line if query_name == "training_export" else row_line
    max_rows = None
    if not datasette.setting("allow_csv_stream"):
        max_rows = datasette.setting("max_returned_rows")
    db = datasette.get_database(database)
    try:
        chunks = await _query_lines(db, query.sql, params, line, None, max_rows)
    except ExportError as export_error:
        return Response.text(f"{export_error}\n", status=400)
    headers = {}
    if request.args.get("_dl"):
        headers["content-disposition"] = f'attachment; filename="{query_name}.jsonl"'
    return StreamingResponse(chunks, headers=headers)
