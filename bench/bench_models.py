"""Models for the benchmarks: fixed latencies, no provider, no key.

Registered through llm's plugin manager by :func:`register`. ``bench-zero``
answers at once; ``bench-member-200ms`` and ``bench-member-100ms`` sleep that
long; ``bench-arbiter-50ms`` sleeps 50 ms and answers as a confident arbiter.
"""

from __future__ import annotations

import re
import time

import llm
import llm.plugins

LABEL_PATTERN = re.compile(r'<answer label="([^"]+)">')


class BenchModel(llm.Model):
    can_stream = False

    def __init__(self, model_id: str, delay: float, arbiter: bool = False) -> None:
        self.model_id = model_id
        self.delay = delay
        self.arbiter = arbiter

    def execute(self, prompt, stream, response, conversation=None):
        if self.delay:
            time.sleep(self.delay)
        text = prompt.prompt or ""
        if self.arbiter:
            labels = LABEL_PATTERN.findall(text)
            text = (
                "<synthesis>All answers agree.</synthesis>"
                "<confidence>0.95</confidence><analysis>Consistent.</analysis>"
                "<dissent>None</dissent><needs_iteration>false</needs_iteration>"
                f"<refinement_areas></refinement_areas><ranking>{', '.join(labels)}"
                "</ranking>"
            )
        response.set_usage(input=len(prompt.prompt.split()), output=len(text.split()))
        yield text


class _Plugin:
    @llm.hookimpl
    def register_models(self, register):
        register(BenchModel("bench-zero", 0))
        register(BenchModel("bench-member-200ms", 0.2))
        register(BenchModel("bench-member-100ms", 0.1))
        register(BenchModel("bench-arbiter-50ms", 0.05, arbiter=True))


def register() -> None:
    if not llm.plugins.pm.has_plugin("bench_models"):
        llm.plugins.pm.register(_Plugin(), name="bench_models")
