"""Stores for the Datasette plugin's tests, and a Datasette to browse them.

Two kinds of store:

- :func:`run_consortiums` runs real consortiums of the scripted test models
  through ``recorder.create_consortium``, so the plugin is tested against
  exactly what the recorder writes;
- :func:`build_bulk_store` writes many completed runs straight through
  ``EvaluationStore`` in one transaction, for the large-export tests.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import scripted_model
from click.testing import CliRunner
from datasette.app import Datasette

from datasette_consortium.compat import DATASETTE_1
from recorder import create_consortium
from recorder.evaluation_store import EvaluationStore

REPO = pathlib.Path(__file__).parent.parent
METADATA_PATH = REPO / "metadata.yml"

# A model reply that would run script in the page if it were not escaped.
HOSTILE_REPLY = (
    "<script>window.__consortium_pwned = 'script'</script>"
    '<img src="x" onerror="window.__consortium_pwned = \'img\'">'
    "</pre></div><b>bold?</b> & {{ 7 * 7 }}"
)

SCRIPTS: dict[str, dict[str, Any]] = {
    "hostile-member": {"reply": HOSTILE_REPLY},
    "hesitant-arbiter": {"arbiter": True, "confidences": [0.4, 0.92]},
}


@contextmanager
def scripted_models(tmp_path: pathlib.Path) -> Iterator[None]:
    """The extra scripted models, and llm's user folder kept under tmp_path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLM_USER_PATH", str(tmp_path / "llm-user"))
        saved = dict(scripted_model.extra_scripts)
        scripted_model.extra_scripts.update(SCRIPTS)
        try:
            yield
        finally:
            scripted_model.extra_scripts.clear()
            scripted_model.extra_scripts.update(saved)


def run_consortiums(path: pathlib.Path) -> dict[str, str]:
    """Run four real consortiums into ``path``; return their IDs by kind.

    - ``parallel``: ``scripted-member:2`` and ``scripted-slow`` (the slow one),
      one iteration, arbiter confident;
    - ``iterating``: two iterations, the arbiter unsure the first time;
    - ``hostile``: a member whose reply is HTML and script;
    - ``failing``: one member that fails, beside one that answers.
    """
    with scripted_models(path.parent):
        runs = {
            "parallel": _run(
                path, ["scripted-member:2", "scripted-slow"], "Name a prime number"
            ),
            "iterating": _run(
                path,
                ["scripted-member", "scripted-slow"],
                "Explain entanglement simply",
                arbiter="hesitant-arbiter",
                max_iterations=3,
            ),
            "hostile": _run(
                path,
                ["hostile-member", "scripted-member"],
                "Say <script>alert(1)</script>",
            ),
            "failing": _run(
                path, ["scripted-fail", "scripted-member"], "Try and fail once"
            ),
        }
    return runs


def _run(
    path: pathlib.Path,
    models: list[str],
    prompt: str,
    arbiter: str = "scripted-arbiter",
    **options: Any,
) -> str:
    consortium = create_consortium(
        models=models,
        arbiter=arbiter,
        judging_method="default",
        db_path=str(path),
        **options,
    )
    return consortium.orchestrate(prompt=prompt)["consortium_id"]


START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def build_bulk_store(path: pathlib.Path, runs: int) -> None:
    """Write ``runs`` completed one-iteration runs (two members each).

    Run ``n`` starts ``n`` minutes after 2025-01-01; its confidence cycles
    through 0.50 .. 0.99, so ``since`` and ``min_confidence`` filters select
    predictable subsets.
    """
    store = EvaluationStore(path)
    with store.batch():
        for number in range(runs):
            _write_run(store, number)
    store.close()


def _write_run(store: EvaluationStore, number: int) -> None:
    consortium_id = f"cons-{number:016x}"
    started = START + timedelta(minutes=number)
    confidence = 0.5 + (number % 50) / 100
    stamp = started.isoformat(timespec="milliseconds")
    store.start_run(
        consortium_id=consortium_id,
        trace_id=f"{number:032x}",
        prompt=f"Question {number}: what is {number} squared?",
        models=[{"model": "alpha", "count": 1}, {"model": "beta", "count": 1}],
        arbiter="judge",
        judging_method="default",
        confidence_threshold=0.8,
        min_iterations=1,
        max_iterations=1,
        started_at=stamp,
    )
    members = []
    for instance, model in enumerate(("alpha", "beta"), start=1):
        request_id = f"req-{number:08x}{instance:04x}"
        store.record_model_call(
            request_id=request_id,
            consortium_id=consortium_id,
            iteration_id=1,
            role="member",
            model=model,
            instance=1,
            label="AB"[instance - 1],
            prompt="q",
            response=f"{model} says {number * number}",
            input_tokens=10,
            output_tokens=5 * instance,
            duration_ms=100.0 * instance,
            started_at=stamp,
        )
        members.append(
            {
                "model": model,
                "instance": 1,
                "label": "AB"[instance - 1],
                "request_id": request_id,
                "rank": instance,
                "input_tokens": 10,
                "output_tokens": 5 * instance,
                "duration_ms": 100.0 * instance,
            }
        )
    decision = {
        "synthesis": f"{number} squared is {number * number}",
        "confidence": confidence,
        "analysis": f"Both agree on {number * number}.",
        "dissent": "",
        "needs_iteration": False,
        "refinement_areas": [],
        "ranking": ["A", "B"],
    }
    store.store_evaluation(
        consortium_id,
        1,
        f"Question {number}",
        "judge",
        members,
        decision,
        {"input": 40, "output": 20},
        50.0,
        timestamp=stamp,
    )
    store.finish_run(
        consortium_id,
        status="completed",
        iteration_count=1,
        final_confidence=confidence,
        synthesis=decision["synthesis"],
        finished_at=stamp,
        duration_ms=300.0,
        input_tokens=60,
        output_tokens=35,
    )


def recorder_export_lines(
    path: pathlib.Path, since: str = "", min_confidence: str = ""
) -> list[str]:
    """The lines the recorder writes for a training export with these filters.

    Runs ``consortium-record export-training`` when the CLI has it; until then
    the store's own ``iter_training_examples``, written the CLI's way.
    """
    from recorder import cli as cli_module

    command = getattr(cli_module, "cli", None)
    if command is not None and "export-training" in getattr(command, "commands", {}):
        output = path.parent / "cli-export.jsonl"
        arguments = ["export-training", str(output)]
        if since:
            arguments += ["--since", since]
        if min_confidence:
            arguments += ["--min-confidence", min_confidence]
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LLM_CONSORTIUM_DB", str(path))
            result = CliRunner().invoke(command, arguments, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return output.read_text(encoding="utf-8").splitlines()
    examples = EvaluationStore(path).iter_training_examples(
        since or None, float(min_confidence) if min_confidence else None
    )
    return [json.dumps(example, ensure_ascii=False) for example in examples]


async def datasette_for(
    *paths: pathlib.Path, metadata: dict[str, Any] | None = None, **settings: Any
) -> Datasette:
    """A started Datasette serving ``paths`` with this plugin loaded."""
    kwargs: dict[str, Any] = {}
    if metadata is not None:
        kwargs["metadata"] = metadata
    if settings:
        kwargs["settings"] = settings
    datasette = Datasette([str(path) for path in paths], **kwargs)
    await datasette.invoke_startup()
    return datasette


async def restricted_datasette(path: pathlib.Path) -> Datasette:
    """A Datasette where only the actor ``{"id": "root"}`` may see the store."""
    rules = {"databases": {path.stem: {"allow": {"id": "root"}}}}
    if DATASETTE_1:
        datasette = Datasette([str(path)], config=rules)
    else:
        datasette = Datasette([str(path)], metadata=rules)
    await datasette.invoke_startup()
    return datasette


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]
