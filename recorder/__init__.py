"""Run traced LLM consortiums and record every step in ``evaluations.db``.

``create_consortium`` builds a consortium of ``llm`` models; its
``orchestrate(prompt)`` runs members in parallel, has an arbiter judge them,
iterates until confident, and records every call in an
:class:`~recorder.evaluation_store.EvaluationStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .evaluation_store import EvaluationStore, StoreError
from .judging import JUDGING_METHODS

if TYPE_CHECKING:
    from .orchestrator import (
        Consortium,
        ConsortiumError,
        MemberModel,
        parse_model_spec,
    )

__all__ = [
    "JUDGING_METHODS",
    "Consortium",
    "ConsortiumError",
    "EvaluationStore",
    "MemberModel",
    "StoreError",
    "create_consortium",
    "parse_model_spec",
]

_FROM_ORCHESTRATOR = {
    "Consortium",
    "ConsortiumError",
    "MemberModel",
    "parse_model_spec",
}


def __getattr__(name: str) -> Any:
    # The orchestrator imports llm, which takes a while: only on first use,
    # so that reading the store stays quick.
    if name in _FROM_ORCHESTRATOR:
        from . import orchestrator

        return getattr(orchestrator, name)
    raise AttributeError(f"module 'recorder' has no attribute {name!r}")


def create_consortium(
    models: Sequence[str],
    arbiter: str | None = None,
    judging_method: str = "default",
    **options: Any,
) -> Consortium:
    """A consortium of ``models`` (``"name"`` or ``"name:count"``).

    :param arbiter: the judging model; defaults to the first member's model.
    :param judging_method: ``default`` (synthesis and ranking), ``rank`` (the
        top-ranked member answer is the result) or ``consensus`` (no arbiter
        model: the answer most similar to the others wins).
    :param options: ``confidence_threshold``, ``min_iterations``,
        ``max_iterations``, ``system``, ``store`` or ``db_path``, ``timeout``,
        ``retries``, ``concurrency``, as :class:`~recorder.orchestrator.Consortium`
        takes them.
    """
    from .orchestrator import Consortium

    return Consortium(models, arbiter, judging_method, **options)
