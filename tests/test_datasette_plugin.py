"""The Datasette plugin against stores written by real test-model consortiums."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import markupsafe
import pytest
import sqlite_utils
import yaml
from datasette_fixtures import (
    METADATA_PATH,
    datasette_for,
    jsonl,
    recorder_export_lines,
    restricted_datasette,
    run_consortiums,
)

from datasette_consortium.canned import CANNED_QUERIES
from datasette_consortium.views import settle_abandoned_run
from recorder import queries


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "evaluations.db"
    runs = run_consortiums(path)
    return path, runs


@pytest.fixture
def path(store):
    return store[0]


@pytest.fixture
def runs(store):
    return store[1]


def run_url(consortium_id: str, suffix: str = "") -> str:
    return f"/evaluations/-/consortium/runs/{consortium_id}{suffix}"


# Canned queries --------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(CANNED_QUERIES))
async def test_canned_query_has_title_and_description(path, name):
    datasette = await datasette_for(path)
    response = await datasette.client.get(f"/evaluations/{name}")
    assert response.status_code == 200
    query = CANNED_QUERIES[name]
    assert str(markupsafe.escape(query.title)) in response.text
    assert str(markupsafe.escape(query.description)) in response.text


@pytest.mark.asyncio
async def test_leaderboard_has_the_cli_columns(path):
    datasette = await datasette_for(path)
    response = await datasette.client.get("/evaluations/leaderboard.json?_shape=array")
    rows = response.json()
    assert [list(row) for row in rows][0] == list(queries.LEADERBOARD_COLUMNS)
    assert {row["model"] for row in rows} == {
        "scripted-member",
        "scripted-slow",
        "hostile-member",
        "scripted-fail",
    }


@pytest.mark.asyncio
async def test_canned_queries_only_on_consortium_databases(path, tmp_path):
    other = tmp_path / "other.db"
    sqlite_utils.Database(other)["things"].insert({"id": 1})
    datasette = await datasette_for(path, other)
    assert (
        await datasette.client.get("/evaluations/leaderboard.json")
    ).status_code == 200
    assert (await datasette.client.get("/other/leaderboard.json")).status_code == 404


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "/evaluations/leaderboard.json?_shape=array&since=&models=",
        "/evaluations/recent_runs.json?_shape=array&status=&limit=",
        "/evaluations/training_export.json?_shape=array&since=&min_confidence=",
    ],
)
async def test_blank_parameters_mean_no_filter(path, url):
    datasette = await datasette_for(path)
    blank = await datasette.client.get(url)
    unfiltered = await datasette.client.get(url.split("&")[0])
    assert blank.status_code == 200
    assert blank.json() == unfiltered.json()
    assert blank.json()


@pytest.mark.asyncio
async def test_parameters_filter(path, runs):
    datasette = await datasette_for(path)
    response = await datasette.client.get(
        "/evaluations/recent_runs.json?_shape=array&status=completed&limit=2"
    )
    assert len(response.json()) == 2
    response = await datasette.client.get(
        "/evaluations/training_export.json?_shape=array&since=2999-01-01"
    )
    assert response.json() == []
    response = await datasette.client.get(
        '/evaluations/leaderboard.json?_shape=array&models=["scripted-slow"]'
    )
    assert [row["model"] for row in response.json()] == ["scripted-slow"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "query, argument, words",
    [
        ("leaderboard", "since=yesterday", "since must be an ISO 8601 date"),
        ("leaderboard", "models=gpt-4o,k2", "models must be a JSON list"),
        ("recent_runs", "status=done", "status must be one of"),
        ("recent_runs", "limit=-3", "limit must be a whole number"),
        ("recent_runs", "limit=99999999999999999999", "limit must be a whole number"),
        ("leaderboard", "models=" + "[" * 5000, "models must be a JSON list"),
        ("training_export", "min_confidence=high", "min_confidence must be a number"),
        ("training_export", "min_confidence=1.5", "min_confidence must be a number"),
        ("training_export", "since=2025-13-45", "since must be an ISO 8601 date"),
    ],
)
@pytest.mark.parametrize("extension", ["", ".json", ".jsonl", ".csv"])
async def test_malformed_parameter_is_400_with_a_sentence(
    path, query, argument, words, extension
):
    datasette = await datasette_for(path)
    response = await datasette.client.get(f"/evaluations/{query}{extension}?{argument}")
    assert response.status_code == 400
    assert words in response.text
    if extension == ".json":
        assert response.json()["ok"] is False


@pytest.mark.asyncio
@pytest.mark.parametrize("extension", ["", ".json", ".jsonl"])
async def test_sorting_a_table_by_an_unknown_column_is_400(path, extension):
    datasette = await datasette_for(path)
    response = await datasette.client.get(
        f"/evaluations/runs{extension}", params={"_sort": "no_such_column"}
    )
    assert response.status_code == 400
    assert "Cannot sort runs by" in response.text


# Run-detail page -------------------------------------------------------------


@pytest.mark.asyncio
async def test_run_page_shows_prompt_settings_members_and_decision(path, runs):
    datasette = await datasette_for(path)
    response = await datasette.client.get(run_url(runs["parallel"]))
    assert response.status_code == 200
    html = response.text
    assert "Name a prime number" in html
    assert "scripted-arbiter" in html
    assert "<td>scripted-member ×2, scripted-slow</td>" in html
    assert html.count('class="member') == 3
    assert "An answer to: Name a prime number" in html
    assert "A slow answer to: Name a prime number" in html
    assert "confidence 0.9" in html
    assert "The answers agree on the main points." in html
    assert "Be more specific" in html
    assert "A synthesis of 3 answers" in html
    ranking = re.search(r'<ol class="ranking">(.*?)</ol>', html, re.S).group(1)
    assert "scripted-member #1" in ranking and "scripted-slow #1" in ranking


@pytest.mark.asyncio
async def test_run_page_timeline_is_inline_svg_marking_the_slow_call(path, runs):
    datasette = await datasette_for(path)
    html = (await datasette.client.get(run_url(runs["parallel"]))).text
    svg = re.search(r'<svg class="consortium-timeline".*?</svg>', html, re.S).group(0)
    assert svg.count("<rect") == 4  # three members and the arbiter
    assert svg.count('class="bar-slowest"') == 1
    assert "slowest member" in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.asyncio
async def test_timeline_shows_members_together_and_the_arbiter_after(path, runs):
    datasette = await datasette_for(path)
    data = (await datasette.client.get(run_url(runs["parallel"], ".json"))).json()
    members = [call for call in data["timeline"] if call["role"] == "member"]
    arbiter = [call for call in data["timeline"] if call["role"] == "arbiter"]
    slowest = next(call for call in members if call["slowest"])
    assert slowest["model"] == "scripted-slow"
    # Timestamps are stored to the millisecond, so allow that much slack.
    assert max(m["start_ms"] for m in members) < slowest["end_ms"]
    assert arbiter[0]["start_ms"] >= slowest["end_ms"] - 1


@pytest.mark.asyncio
async def test_run_json_twin(path, runs):
    datasette = await datasette_for(path)
    response = await datasette.client.get(run_url(runs["iterating"], ".json"))
    assert response.status_code == 200
    data = response.json()
    assert data["run"]["consortium_id"] == runs["iterating"]
    assert data["run"]["prompt"] == "Explain entanglement simply"
    assert [i["iteration_id"] for i in data["iterations"]] == [1, 2]
    first = data["iterations"][0]["evaluation"]
    assert first["confidence"] == 0.4
    assert [m["model"] for m in first["ranked_models"]] == [
        "scripted-member",
        "scripted-slow",
    ]
    slowest = [call for call in data["timeline"] if call["slowest"]]
    assert {call["model"] for call in slowest} == {"scripted-slow"}
    assert len(slowest) == 2


@pytest.mark.asyncio
async def test_run_page_shows_member_errors(path, runs):
    datasette = await datasette_for(path)
    html = (await datasette.client.get(run_url(runs["failing"]))).text
    assert "The provider refused the request" in html
    assert 'class="bar-error"' in html


def test_a_run_whose_recorder_died_is_shown_as_interrupted():
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    run = {
        "status": "running",
        "process_id": finished.pid,
        "hostname": socket.gethostname(),
        "error": None,
    }
    settle_abandoned_run(run)
    assert run["status"] == "interrupted"
    assert run["recorded_status"] == "running"
    assert run["error"] == "The recording process ended before the run finished."
    alive = {**run, "status": "running", "process_id": os.getpid()}
    elsewhere = {**run, "status": "running", "hostname": "another-host"}
    for untouched in (alive, elsewhere):
        settle_abandoned_run(untouched)
        assert untouched["status"] == "running"


@pytest.mark.asyncio
@pytest.mark.parametrize("suffix", ["", ".json"])
async def test_unknown_run_is_404_with_a_sentence(path, suffix):
    datasette = await datasette_for(path)
    response = await datasette.client.get(run_url("cons-0000000000000000", suffix))
    assert response.status_code == 404
    assert "No consortium run has the ID cons-0000000000000000" in response.text


@pytest.mark.asyncio
async def test_run_page_on_unknown_database_is_404(path):
    datasette = await datasette_for(path)
    response = await datasette.client.get("/nope/-/consortium/runs/cons-1")
    assert response.status_code == 404
    assert "There is no database called nope." in response.text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "/evaluations/recent_runs",
        "/evaluations/model_calls",
        "/evaluations/evaluations",
        "/evaluations/model_performance",
        "/evaluations/failed_evaluations",
        "/evaluations/runs",
    ],
)
async def test_consortium_ids_link_to_the_run_page(path, runs, url):
    datasette = await datasette_for(path)
    html = (await datasette.client.get(url)).text
    expected = {consortium_id for consortium_id in runs.values()}
    if url.endswith("failed_evaluations"):
        expected = set()
    linked = set(re.findall(r'href="/evaluations/-/consortium/runs/([^"]+)"', html))
    assert linked >= expected


# Escaping --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_model_output_is_escaped(path, runs):
    datasette = await datasette_for(path)
    html = (await datasette.client.get(run_url(runs["hostile"]))).text
    assert "<script>window.__consortium_pwned" not in html
    assert "&lt;script&gt;window.__consortium_pwned" in html
    assert '<img src="x"' not in html
    assert "<b>bold?</b>" not in html
    assert "{{ 7 * 7 }}" in html or "{{ 7 * 7 }}".replace(" ", "") not in html
    assert "<script>alert(1)</script>" not in html


# Export ----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "since, min_confidence", [("", ""), ("", "0.91"), ("2000-01-01", "0.5")]
)
async def test_training_export_matches_the_recorder_line_by_line(
    path, since, min_confidence
):
    datasette = await datasette_for(path)
    response = await datasette.client.get(
        "/evaluations/training_export.jsonl",
        params={"since": since, "min_confidence": min_confidence},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    expected = recorder_export_lines(path, since, min_confidence)
    assert response.text.splitlines() == expected
    assert expected


@pytest.mark.asyncio
async def test_table_export_has_every_row_as_an_object(path):
    datasette = await datasette_for(path)
    response = await datasette.client.get("/evaluations/model_calls.jsonl")
    rows = jsonl(response.text)
    count = (
        await datasette.get_database("evaluations").execute(
            "select count(*) from model_calls"
        )
    ).first()[0]
    assert len(rows) == count
    assert list(rows[0]) == list(queries.MODEL_CALLS_COLUMNS)


@pytest.mark.asyncio
async def test_table_export_keeps_the_filters(path):
    datasette = await datasette_for(path)
    response = await datasette.client.get("/evaluations/model_calls.jsonl?role=arbiter")
    rows = jsonl(response.text)
    assert rows and {row["role"] for row in rows} == {"arbiter"}


@pytest.mark.asyncio
async def test_arbitrary_sql_export(path):
    datasette = await datasette_for(path)
    sql = "select model, count(*) as calls from model_calls group by model"
    url = "/evaluations.jsonl" if _datasette_0() else "/evaluations/-/query.jsonl"
    response = await datasette.client.get(url, params={"sql": sql})
    assert response.status_code == 200
    assert {row["model"] for row in jsonl(response.text)} >= {"scripted-member"}


def _datasette_0() -> bool:
    from datasette.version import __version__

    return __version__.startswith("0.")


# Permissions -----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "/evaluations/-/consortium/runs/{id}",
        "/evaluations/-/consortium/runs/{id}.json",
        "/evaluations/training_export.jsonl",
        "/evaluations/model_calls.jsonl",
    ],
)
async def test_hidden_database_is_403(path, runs, url):
    datasette = await restricted_datasette(path)
    url = url.format(id=runs["parallel"])
    assert (await datasette.client.get(url)).status_code == 403
    allowed = await datasette.client.get(
        url, cookies={"ds_actor": datasette.sign({"a": {"id": "root"}}, "actor")}
    )
    assert allowed.status_code == 200


# Metadata --------------------------------------------------------------------


def test_metadata_describes_every_table_and_column():
    metadata = yaml.safe_load(METADATA_PATH.read_text())
    assert metadata["title"] and metadata["description"]
    tables = metadata["databases"]["evaluations"]["tables"]
    for table, columns in [
        ("runs", queries.RUNS_COLUMNS),
        ("model_calls", queries.MODEL_CALLS_COLUMNS),
        ("evaluations", queries.EVALUATIONS_COLUMNS),
        ("model_performance", queries.MODEL_PERFORMANCE_COLUMNS),
    ]:
        assert tables[table]["description"]
        assert set(columns) <= set(tables[table]["columns"])


@pytest.mark.asyncio
async def test_metadata_is_shown(path):
    metadata = yaml.safe_load(METADATA_PATH.read_text())
    datasette = await datasette_for(path, metadata=metadata)
    html = (await datasette.client.get("/evaluations/runs")).text
    assert "One row per consortium run" in html
