"""The Datasette pages: hostile records shown escaped, bad requests a 4xx."""

from __future__ import annotations

import json
import os
import signal

import pytest
import scripted_model
from click.testing import CliRunner
from datasette.app import Datasette
from reliability_support import (
    recorder_environment,
    rows,
    start_recorder,
    wait_for,
)

from recorder.cli import cli

HOSTILE = (
    "<script>document.title='owned'</script><img src=x onerror=alert(1)>"
    '</pre></table><a href="javascript:alert(2)">x</a>&lt;{{ 7 * 7 }}'
)
TERMINAL = "\x1b[2J\x1b]0;owned\x07"
NUL = "nul\x00byte"


def record(db_path, *arguments: str) -> str:
    result = CliRunner().invoke(
        cli, ["run", "--db", str(db_path), "--json", *arguments]
    )
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout.splitlines()[0])["consortium_id"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with a normal run, a hostile one and a failed one."""
    folder = tmp_path_factory.mktemp("datasette-store")
    path = folder / "evaluations.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLM_USER_PATH", str(folder / "llm-user"))
        patch.setenv("LLM_CONSORTIUM_LOG_FILE", str(folder / "consortium.log"))
        saved = dict(scripted_model.extra_scripts)
        scripted_model.extra_scripts.update(
            {
                "hostile-member": {"reply": HOSTILE + TERMINAL + NUL},
                "hostile-arbiter": {
                    "reply": f"<synthesis>{HOSTILE}</synthesis>"
                    f"<confidence>0.9</confidence><analysis>{HOSTILE}</analysis>"
                    "<ranking>A, B</ranking>"
                },
                "garbage-arbiter": {"reply": HOSTILE},
            }
        )
        try:
            runs = {
                "plain": record(
                    path,
                    "-m",
                    "scripted-member:2",
                    "--arbiter",
                    "scripted-arbiter",
                    "Hi",
                ),
                "hostile": record(
                    path,
                    "-m",
                    "hostile-member",
                    "-m",
                    "scripted-member",
                    "--arbiter",
                    "hostile-arbiter",
                    "--system",
                    HOSTILE,
                    f"{HOSTILE} {TERMINAL} {NUL}",
                ),
                "failed": record(
                    path, "-m", "hostile-member", "--arbiter", "garbage-arbiter", "F"
                ),
            }
        finally:
            scripted_model.extra_scripts.clear()
            scripted_model.extra_scripts.update(saved)
    return path, runs


async def started(path) -> Datasette:
    datasette = Datasette([str(path)])
    await datasette.invoke_startup()
    return datasette


def run_url(consortium_id: str, suffix: str = "") -> str:
    return f"/evaluations/-/consortium/runs/{consortium_id}{suffix}"


def assert_no_live_markup(html: str) -> None:
    for raw in (
        "<script>document",
        "<img src=x",
        'href="javascript:',
        "</pre></table>",
    ):
        assert raw not in html, raw


@pytest.mark.asyncio
async def test_hostile_records_are_escaped_on_every_page(store):
    path, runs = store
    datasette = await started(path)
    pages = [
        run_url(runs["hostile"]),
        run_url(runs["failed"]),
        "/evaluations/runs",
        "/evaluations/model_calls",
        "/evaluations/evaluations",
        "/evaluations/recent_runs",
        "/evaluations/failed_evaluations",
        "/evaluations/training_export",
        f"/evaluations/runs/{runs['hostile']}",
    ]
    for page in pages:
        response = await datasette.client.get(page)
        assert response.status_code == 200, page
        assert_no_live_markup(response.text)
    html = (await datasette.client.get(run_url(runs["hostile"]))).text
    assert "&lt;script&gt;document.title" in html


@pytest.mark.asyncio
async def test_the_json_twin_carries_the_record_exactly(store):
    path, runs = store
    datasette = await started(path)
    response = await datasette.client.get(run_url(runs["hostile"], ".json"))
    assert response.status_code == 200
    text = json.dumps(response.json(), ensure_ascii=False)
    assert json.dumps(HOSTILE + TERMINAL + NUL, ensure_ascii=False)[1:-1] in text
    (call,) = rows(
        path,
        "select response from model_calls where model = 'hostile-member' "
        "and consortium_id = ?",
        [runs["hostile"]],
    )
    assert call["response"] == HOSTILE + TERMINAL + NUL


BAD_RUN_PATHS = [
    "cons-0000000000000000",
    "cons-",
    "%25",
    "_",
    "' or '1'='1",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "..%5C..%5Cwindows",
    "%00",
    "%ff%fe",
    "%E2%80%AE",
    "x" * 5000,
    "cons-0000000000000000.json.json",
    "cons-0000000000000000.csv",
    "%0d%0aSet-Cookie:%20owned=1",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("consortium_id", BAD_RUN_PATHS)
@pytest.mark.parametrize("suffix", ["", ".json"])
async def test_unknown_or_tricky_run_ids_are_404_with_a_sentence(
    store, consortium_id, suffix
):
    path, _ = store
    datasette = await started(path)
    response = await datasette.client.get(run_url(consortium_id, suffix))
    if response.status_code == 302:
        # Datasette moves %-escapes to its ~ form, on the same site only.
        location = response.headers["location"]
        assert location.startswith("/evaluations/-/consortium/runs/"), location
        response = await datasette.client.get(location)
    assert response.status_code == 404, response.text[:500]
    assert "No consortium run has the ID" in response.text
    assert "Set-Cookie" not in str(response.headers).replace("set-cookie", "")
    assert "owned" not in response.headers.get("set-cookie", "")
    assert_no_live_markup(response.text)


ODD_PATHS = [
    "/evaluations/-/consortium/runs/",
    "/evaluations/-/consortium/runs",
    "/evaluations/-/consortium/runs/a/b",
    "/evaluations/-/consortium/",
    "/nope/-/consortium/runs/cons-1",
    "/evaluations/-/consortium/runs/%2e%2e/%2e%2e/runs",
    "/..%2Fevaluations/-/consortium/runs/cons-1",
    "//evaluations/-/consortium/runs/cons-1",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("page", ODD_PATHS)
async def test_odd_paths_are_4xx(store, page):
    path, _ = store
    datasette = await started(path)
    response = await datasette.client.get(page)
    assert 400 <= response.status_code < 500 or response.status_code in (301, 302)
    assert_no_live_markup(response.text)


BAD_PARAMETERS = [
    ("recent_runs", {"limit": "abc"}),
    ("recent_runs", {"limit": "-5"}),
    ("recent_runs", {"limit": "1e999"}),
    ("recent_runs", {"limit": "99999999999999999999999"}),
    ("recent_runs", {"status": "sleeping"}),
    ("recent_runs", {"status": "\x00"}),
    ("leaderboard", {"since": "last tuesday"}),
    ("leaderboard", {"since": "2025-13-45"}),
    ("leaderboard", {"since": "\x00"}),
    ("leaderboard", {"models": "not json"}),
    ("leaderboard", {"models": "[1, 2]"}),
    ("leaderboard", {"models": '{"a": 1}'}),
    ("training_export", {"min_confidence": "high"}),
    ("training_export", {"min_confidence": "nan"}),
    ("training_export", {"min_confidence": "2"}),
    ("training_export", {"since": "yesterday"}),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("query, parameters", BAD_PARAMETERS)
@pytest.mark.parametrize("extension", ["", ".json", ".jsonl"])
async def test_malformed_canned_query_parameters_are_400_with_a_sentence(
    store, query, parameters, extension
):
    path, _ = store
    datasette = await started(path)
    response = await datasette.client.get(
        f"/evaluations/{query}{extension}", params=parameters
    )
    assert response.status_code == 400, (response.status_code, response.text[:300])
    # The sentence names the parameter that was wrong and what would do.
    (name,) = parameters
    assert f"{name} must be" in response.text
    assert "Traceback" not in response.text


CORE_PAGES_WITH_BAD_PARAMETERS = [
    "/evaluations/runs?_size=abc",
    "/evaluations/runs?_size=-1",
    "/evaluations/runs?_next=%00%ff",
    "/evaluations/runs.json?_shape=bogus",
    "/evaluations/runs.jsonl?_size=abc",
    "/evaluations/model_calls.jsonl?_next=garbage",
    "/evaluations/runs?started_at__gt=%ff",
    "/evaluations/runs/no-such-row",
    "/evaluations/runs/no-such-row.json",
    "/evaluations/no_such_table",
    "/evaluations/no_such_table.jsonl",
    "/evaluations.json?sql=select+*+from+runs+where+consortium_id+%3D+%3Aid",
    "/evaluations.jsonl?sql=select+nonsense",
    "/evaluations/recent_runs.csv?limit=abc",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("page", CORE_PAGES_WITH_BAD_PARAMETERS)
async def test_no_malformed_request_is_a_server_error(store, page):
    path, _ = store
    datasette = await started(path)
    response = await datasette.client.get(page)
    assert response.status_code < 500, (page, response.text[:500])


@pytest.mark.asyncio
async def test_deeply_nested_models_parameter_is_400(store):
    path, _ = store
    datasette = await started(path)
    response = await datasette.client.get(
        "/evaluations/leaderboard.json", params={"models": "[" * 5000}
    )
    assert response.status_code == 400


@pytest.mark.asyncio
@pytest.mark.parametrize("page", ["/evaluations/runs", "/evaluations/runs.jsonl"])
async def test_sorting_by_an_unknown_column_is_4xx(store, page):
    path, _ = store
    datasette = await started(path)
    response = await datasette.client.get(page, params={"_sort": "no_such_column"})
    assert response.status_code == 400


SLOW_SCRIPTS = {"plodding-member": {"reply": "Slowly: {prompt}", "delay": 0.6}}


@pytest.mark.asyncio
async def test_a_killed_run_is_shown_as_interrupted_in_datasette(tmp_path):
    db_path = tmp_path / "killed.db"
    recorder = start_recorder(
        ["run", "-m", "scripted-member", "-m", "plodding-member"]
        + ["--arbiter", "scripted-arbiter", "--db", str(db_path), "Killed"],
        recorder_environment(tmp_path, SLOW_SCRIPTS),
    )
    wait_for(
        lambda: rows(db_path, "select count(*) as n from model_calls")[0]["n"] >= 1
    )
    os.kill(recorder.pid, signal.SIGKILL)
    recorder.wait(timeout=30)
    (run,) = rows(db_path, "select consortium_id from runs")

    datasette = await started(db_path)
    data = (
        await datasette.client.get(
            f"/killed/-/consortium/runs/{run['consortium_id']}.json"
        )
    ).json()
    assert data["run"]["status"] == "interrupted"
