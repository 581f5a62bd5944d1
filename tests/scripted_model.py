"""An ``llm`` plugin with scripted models, for tests that must not call a provider.

Registered through ``llm``'s real plugin manager (see ``conftest.py`` and
``scripted_cli.py``). Models come from two places:

- a few defaults (``scripted-member``, ``scripted-arbiter``, ...), and
- ``SCRIPTED_MODELS``: JSON (or ``@path`` to a JSON file) mapping a model ID to
  its script, read each time ``llm`` asks for models, so a test or a subprocess
  can set it through the environment.

A script is a dict with any of:
``reply`` (text; ``{prompt}`` is replaced by the prompt's first line),
``replies`` (list, one per call, the last repeated), ``delay`` (seconds),
``fail`` (an error message to raise), ``fail_times`` (fail only the first N
calls), ``hang`` (sleep an hour), ``usage`` (``[input, output]`` or ``null`` to
report none), ``supports_schema`` (bool), ``arbiter`` (reply as an arbiter that
ranks the labels it was shown), ``confidence`` / ``confidences`` (for arbiters).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import Any

import llm

DEFAULT_SCRIPTS: dict[str, dict[str, Any]] = {
    "scripted-member": {"reply": "An answer to: {prompt}"},
    "scripted-arbiter": {"arbiter": True, "confidence": 0.9},
    "scripted-schema-arbiter": {
        "arbiter": True,
        "confidence": 0.9,
        "supports_schema": True,
    },
    "scripted-slow": {"reply": "A slow answer to: {prompt}", "delay": 0.2},
    "scripted-fail": {"fail": "The provider refused the request"},
    "scripted-hang": {"hang": True},
    "scripted-no-usage": {"reply": "No usage reported", "usage": None},
    "llama3:8b": {"reply": "llama says: {prompt}"},
    "openrouter/x:free": {"reply": "openrouter says: {prompt}"},
}

# Scripts added by tests running in this process, on top of the defaults.
extra_scripts: dict[str, dict[str, Any]] = {}
_call_counts: dict[str, int] = {}
_lock = threading.Lock()

LABEL_PATTERN = re.compile(r'<answer label="([^"]+)">')


class ScriptedError(Exception):
    pass


def scripts() -> dict[str, dict[str, Any]]:
    combined = dict(DEFAULT_SCRIPTS)
    configured = os.environ.get("SCRIPTED_MODELS")
    if configured:
        if configured.startswith("@"):
            with open(configured[1:]) as file:
                configured = file.read()
        combined.update(json.loads(configured))
    combined.update(extra_scripts)
    return combined


def reset_call_counts() -> None:
    with _lock:
        _call_counts.clear()


def arbiter_reply(prompt_text: str, confidence: float) -> str:
    labels = LABEL_PATTERN.findall(prompt_text)
    return (
        f"<synthesis>A synthesis of {len(labels)} answers</synthesis>\n"
        f"<confidence>{confidence}</confidence>\n"
        "<analysis>The answers agree on the main points.</analysis>\n"
        "<dissent>None.</dissent>\n"
        f"<needs_iteration>{'false' if confidence >= 0.8 else 'true'}"
        "</needs_iteration>\n"
        "<refinement_areas>Be more specific</refinement_areas>\n"
        f"<ranking>{', '.join(labels)}</ranking>"
    )


def arbiter_json_reply(prompt_text: str, confidence: float) -> str:
    labels = LABEL_PATTERN.findall(prompt_text)
    return json.dumps(
        {
            "synthesis": f"A synthesis of {len(labels)} answers",
            "confidence": confidence,
            "analysis": "The answers agree on the main points.",
            "dissent": "",
            "needs_iteration": confidence < 0.8,
            "refinement_areas": ["Be more specific"],
            "ranking": labels,
        }
    )


class ScriptedModel(llm.Model):
    can_stream = False

    def __init__(self, model_id: str, script: dict[str, Any]) -> None:
        self.model_id = model_id
        self.script = script
        self.supports_schema = bool(script.get("supports_schema"))

    def execute(self, prompt, stream, response, conversation=None):
        script = self.script
        with _lock:
            call_number = _call_counts.get(self.model_id, 0)
            _call_counts[self.model_id] = call_number + 1
        if script.get("hang"):
            time.sleep(3600)
        if script.get("delay"):
            time.sleep(float(script["delay"]))
        fail_times = script.get("fail_times")
        if script.get("fail") and (fail_times is None or call_number < fail_times):
            raise ScriptedError(script["fail"])

        text = self._reply(prompt, call_number)
        usage = script.get("usage", "count")
        if usage == "count":
            prompt_words = len((prompt.prompt or "").split())
            response.set_usage(input=prompt_words, output=len(text.split()))
        elif usage is not None:
            response.set_usage(input=usage[0], output=usage[1])
        yield text

    def _reply(self, prompt, call_number: int) -> str:
        script = self.script
        prompt_text = prompt.prompt or ""
        if script.get("arbiter"):
            confidences = script.get("confidences") or [script.get("confidence", 0.9)]
            confidence = confidences[min(call_number, len(confidences) - 1)]
            if prompt.schema is not None:
                return arbiter_json_reply(prompt_text, confidence)
            return arbiter_reply(prompt_text, confidence)
        replies = script.get("replies")
        if replies:
            reply = replies[min(call_number, len(replies) - 1)]
        else:
            reply = script.get("reply", "{prompt}")
        first_line = prompt_text.strip().splitlines()[0] if prompt_text.strip() else ""
        return reply.replace("{prompt}", first_line)


@llm.hookimpl
def register_models(register):
    for model_id, script in scripts().items():
        register(ScriptedModel(model_id, script))
