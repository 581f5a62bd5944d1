"""Large exports: every row, past max_returned_rows, streamed in flat memory."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from datasette_fixtures import build_bulk_store, datasette_for, recorder_export_lines

RUNS = 20_000


@pytest.fixture(scope="module")
def bulk_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("bulk") / "evaluations.db"
    build_bulk_store(path, RUNS)
    return path


@pytest.mark.slow
@pytest.mark.asyncio
async def test_training_export_has_every_run_and_matches_the_recorder(bulk_store):
    datasette = await datasette_for(bulk_store)
    response = await datasette.client.get("/evaluations/training_export.jsonl")
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert len(lines) == RUNS
    assert lines == recorder_export_lines(bulk_store)


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "since", ["2025-01-08", "2025-01-08T02:00:00+02:00", "2025-01-07T23:59:59.9995Z"]
)
async def test_filtered_training_export_matches_the_recorder(bulk_store, since):
    datasette = await datasette_for(bulk_store)
    response = await datasette.client.get(
        "/evaluations/training_export.jsonl",
        params={"since": since, "min_confidence": "0.9"},
    )
    lines = response.text.splitlines()
    assert 1000 < len(lines) < RUNS
    assert lines == recorder_export_lines(bulk_store, since, "0.9")
    # Every form of the same moment selects the same runs.
    assert json.loads(lines[0])["prompt"].startswith("Question 10090:")


@pytest.mark.slow
@pytest.mark.asyncio
async def test_table_export_pages_through_every_row(bulk_store):
    datasette = await datasette_for(bulk_store)
    response = await datasette.client.get("/evaluations/runs.jsonl?status=completed")
    ids = [json.loads(line)["consortium_id"] for line in response.text.splitlines()]
    assert len(ids) == RUNS
    assert len(set(ids)) == RUNS


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url", ["/evaluations/training_export.jsonl", "/evaluations/runs.jsonl"]
)
@pytest.mark.parametrize("allow_csv_stream, lines", [(True, 30), (False, 10)])
async def test_exports_pass_max_returned_rows_unless_streaming_is_off(
    tmp_path, url, allow_csv_stream, lines
):
    path = tmp_path / "evaluations.db"
    build_bulk_store(path, 30)
    datasette = await datasette_for(
        path, max_returned_rows=10, allow_csv_stream=allow_csv_stream
    )
    response = await datasette.client.get(url)
    assert len(response.text.splitlines()) == lines


@pytest.mark.slow
@pytest.mark.asyncio
async def test_export_streams_in_flat_memory(bulk_store):
    datasette = await datasette_for(bulk_store)
    body = await _stream(datasette, "/evaluations/training_export.jsonl")
    assert body["lines"] == RUNS
    # While the body streams, memory holds about one batch of rows (500), not
    # the export: a small fraction of the bytes sent (about 0.5 MB of 4 MB).
    assert body["bytes"] > 3_000_000
    assert body["peak_while_streaming"] < body["bytes"] / 4
    assert body["chunks"] >= RUNS // 1000


async def _stream(datasette, path: str) -> dict[str, int]:
    """Call the ASGI app directly, counting the body as it arrives."""
    app = datasette.app()
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 5000),
        "server": ("localhost", 80),
    }
    totals = {"lines": 0, "bytes": 0, "chunks": 0, "peak_while_streaming": 0}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            assert message["status"] == 200
            tracemalloc.reset_peak()
            totals["start"] = tracemalloc.get_traced_memory()[0]
            return
        body = message.get("body", b"")
        totals["lines"] += body.count(b"\n")
        totals["bytes"] += len(body)
        totals["chunks"] += 1
        # Only what is still allocated beyond the start counts against us.
        grown = tracemalloc.get_traced_memory()[1] - totals["start"]
        totals["peak_while_streaming"] = max(totals["peak_while_streaming"], grown)

    tracemalloc.start()
    try:
        await app(scope, receive, send)
    finally:
        tracemalloc.stop()
    return totals


@pytest.mark.slow
@pytest.mark.asyncio
async def test_canned_query_export_is_not_bound_by_the_page_time_limit(bulk_store):
    # A page of a query must finish within sql_time_limit_ms; a whole export
    # of the plugin's own query may take longer.
    datasette = await datasette_for(bulk_store, sql_time_limit_ms=5)
    response = await datasette.client.get("/evaluations/training_export.jsonl")
    assert response.status_code == 200
    assert len(response.text.splitlines()) == RUNS
