"""Run one consortium: members in parallel, an arbiter judging, until confident."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import llm

from . import arbiter as arbiter_module
from .consensus import CONSENSUS_ARBITER, judge_by_consensus
from .evaluation_store import EvaluationStore
from .judging import JUDGING_METHODS
from .logger import StructuredLogger, preview
from .proxy import CallResult, RecordingProxy, describe_error
from .tracing import (
    TracingContext,
    consortium_context,
    current_tracing_context,
    iteration_context,
    run_in_context,
)

COUNT_SUFFIX = re.compile(r"^(?P<model>.+):(?P<count>-?\d+)$")


class ConsortiumError(Exception):
    """A consortium cannot be set up as asked; the message is one sentence."""


@dataclass(frozen=True)
class MemberModel:
    """A model asked ``count`` times (``count`` instances) each iteration."""

    model: str
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "count": self.count}


def parse_model_spec(spec: str) -> MemberModel:
    """``"llama3:8b"`` is one instance of ``llama3:8b``; ``"k2:3"`` is three of k2.

    Only a trailing ``:<integer>`` is a count, so model IDs that contain colons
    survive; a count below 1 is an error.
    """
    spec = spec.strip()
    if not spec:
        raise ConsortiumError("A model name cannot be empty.")
    match = COUNT_SUFFIX.match(spec)
    if not match:
        return MemberModel(spec)
    count = int(match["count"])
    if count < 1:
        raise ConsortiumError(
            f"Instance count must be at least 1 in {spec!r} (use MODEL:COUNT)."
        )
    return MemberModel(match["model"], count)


def resolve_model(name: str) -> llm.Model:
    """The ``llm`` model for a model ID or alias, or a :class:`ConsortiumError`.

    A model that needs an API key nobody has given is refused here, before
    anything is recorded, with ``llm``'s own advice on how to set one.
    """
    try:
        model = llm.get_model(name)
    except llm.UnknownModelError:
        raise ConsortiumError(
            f"Unknown model: {name}. Run 'llm models' to list the models you have."
        ) from None
    try:
        model.get_key()
    except llm.NeedsKeyException as missing:
        raise ConsortiumError(f"Model {name} needs an API key: {missing}.") from None
    return model


@dataclass
class _Member:
    model: str
    instance: int
    llm_model: llm.Model


class Consortium:
    """Several models answering one prompt, judged by an arbiter.

    Create it with :func:`recorder.create_consortium`; call :meth:`orchestrate`
    once per prompt. Safe to use from several threads at once; ``concurrency``
    says how many runs will be under way at once, so that every member of
    every run gets a thread of its own.
    """

    def __init__(
        self,
        models: Sequence[str | MemberModel],
        arbiter: str | None = None,
        judging_method: str = "default",
        *,
        confidence_threshold: float = 0.8,
        min_iterations: int = 1,
        max_iterations: int = 3,
        system: str | None = None,
        store: EvaluationStore | None = None,
        db_path: str | None = None,
        timeout: float | None = None,
        retries: int = 2,
        backoff_seconds: float = 0.5,
        concurrency: int = 1,
    ) -> None:
        self.member_models = [
            m if isinstance(m, MemberModel) else parse_model_spec(m) for m in models
        ]
        if not self.member_models:
            raise ConsortiumError("Give at least one member model (-m MODEL).")
        if judging_method not in JUDGING_METHODS:
            raise ConsortiumError(
                f"Unknown judging method {judging_method!r}; choose one of "
                f"{', '.join(JUDGING_METHODS)}."
            )
        if not 0 <= confidence_threshold <= 1:
            raise ConsortiumError("The confidence threshold must be between 0 and 1.")
        if min_iterations < 1 or max_iterations < 1:
            raise ConsortiumError("Iteration counts must be at least 1.")
        if min_iterations > max_iterations:
            raise ConsortiumError(
                f"--min-iterations ({min_iterations}) cannot be more than "
                f"--max-iterations ({max_iterations})."
            )
        # Written so that NaN fails too; waits longer than TIMEOUT_MAX overflow.
        if timeout is not None and not 0 < timeout <= threading.TIMEOUT_MAX:
            raise ConsortiumError(
                "The timeout must be a positive number of seconds, at most "
                f"{threading.TIMEOUT_MAX:.0f}."
            )
        if retries < 0:
            raise ConsortiumError("Retries cannot be negative.")
        if concurrency < 1:
            raise ConsortiumError("Concurrency must be at least 1.")

        self.judging_method = judging_method
        instance_count = sum(member.count for member in self.member_models)
        if judging_method == "consensus":
            if arbiter is not None:
                raise ConsortiumError(
                    "The consensus method needs no arbiter model; leave out "
                    "--arbiter or choose another --judging-method."
                )
            if instance_count < 2:
                raise ConsortiumError(
                    "The consensus method compares answers, so it needs at least "
                    "two members (for example -m MODEL:2)."
                )
            self.arbiter = CONSENSUS_ARBITER
            self.arbiter_model = None
        else:
            self.arbiter = arbiter or self.member_models[0].model
            self.arbiter_model = resolve_model(self.arbiter)
        self.members = self._number_instances()
        self.confidence_threshold = confidence_threshold
        self.min_iterations = min_iterations
        self.max_iterations = max_iterations
        self.system = system
        self._owns_store = store is None
        self.store = store if store is not None else EvaluationStore(db_path)
        # One pool for the consortium's lifetime: starting threads for every
        # iteration costs more than a zero-latency model call.
        self.member_pool = ThreadPoolExecutor(
            max_workers=len(self.members) * max(1, concurrency),
            thread_name_prefix="consortium-member",
        )
        self.active_runs: set[str] = set()
        self.interrupted = False
        self._active_lock = threading.Lock()
        self.logger = StructuredLogger("recorder.orchestrator")
        self.proxy = RecordingProxy(
            self.store,
            self.logger,
            timeout=timeout,
            retries=retries,
            backoff_seconds=backoff_seconds,
        )

    def _number_instances(self) -> list[_Member]:
        """One member per instance, numbered 1, 2, ... per model name.

        ``-m echo -m echo:2`` is three instances of ``echo``, numbered 1 to 3,
        so that a model and an instance number name one answer.
        """
        models: dict[str, llm.Model] = {}
        counts: dict[str, int] = {}
        members = []
        for member in self.member_models:
            if member.model not in models:
                models[member.model] = resolve_model(member.model)
            for _ in range(member.count):
                counts[member.model] = counts.get(member.model, 0) + 1
                members.append(
                    _Member(member.model, counts[member.model], models[member.model])
                )
        return members

    def close(self) -> None:
        """Stop the member threads; close the store if this consortium opened it."""
        self.member_pool.shutdown(wait=False, cancel_futures=True)
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Consortium:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def interrupt_active_runs(self, reason: str = "Interrupted by the user.") -> int:
        """Mark every run under way as ``interrupted`` and start no new ones.

        Returns how many runs were under way.
        """
        with self._active_lock:
            self.interrupted = True
            active = sorted(self.active_runs)
            self.active_runs.clear()
        for consortium_id in active:
            self.store.mark_interrupted(consortium_id, reason)
        return len(active)

    def orchestrate(self, prompt: str, enable_tracing: bool = True) -> dict[str, Any]:
        """Run the consortium on ``prompt``, record it, and return the result.

        Inside an open :func:`~recorder.tracing.consortium_context` the run
        takes that context's IDs and adds to its metrics; otherwise it opens
        its own. ``enable_tracing`` is accepted for the original API's sake:
        every run is traced.
        """
        if not prompt or not prompt.strip():
            raise ConsortiumError("The prompt is empty.")
        context = current_tracing_context()
        if context is not None and not context.run_recorded:
            return _Run(self, prompt, context).execute()
        # A second run in the same context gets IDs of its own; the open
        # context still counts its tokens and calls.
        with consortium_context(parent=context) as own_context:
            return _Run(self, prompt, own_context).execute()


class _Run:
    """One prompt through all its iterations."""

    def __init__(
        self, consortium: Consortium, prompt: str, context: TracingContext
    ) -> None:
        self.consortium = consortium
        self.prompt = prompt
        self.context = context
        self.store = consortium.store
        self.logger = consortium.logger
        self.iterations: list[dict[str, Any]] = []
        self.decision: dict[str, Any] | None = None
        self.result_text: str | None = None

    def execute(self) -> dict[str, Any]:
        consortium = self.consortium
        # The run's row is written under the lock, so an interruption either
        # finds the run among the active ones or keeps it from starting.
        with consortium._active_lock:
            if consortium.interrupted:
                raise ConsortiumError("The consortium was interrupted.")
            self._record_start()
            self.context.run_recorded = True
            consortium.active_runs.add(self.context.consortium_id)
        interrupted = False
        try:
            return self._execute()
        except KeyboardInterrupt:
            # Left among the active runs, so interrupt_active_runs counts it.
            interrupted = True
            raise
        finally:
            if not interrupted:
                with consortium._active_lock:
                    consortium.active_runs.discard(self.context.consortium_id)

    def _record_start(self) -> None:
        consortium = self.consortium
        self.store.start_run(
            consortium_id=self.context.consortium_id,
            trace_id=self.context.trace_id,
            prompt=self.prompt,
            system=consortium.system,
            models=[m.to_dict() for m in consortium.member_models],
            arbiter=consortium.arbiter,
            judging_method=consortium.judging_method,
            confidence_threshold=consortium.confidence_threshold,
            min_iterations=consortium.min_iterations,
            max_iterations=consortium.max_iterations,
        )

    def _execute(self) -> dict[str, Any]:
        consortium = self.consortium
        start = time.perf_counter()
        status, error = "completed", None
        try:
            self.logger.info(
                f"Consortium started with {len(consortium.members)} members",
                event_type="consortium_start",
                trace_id=self.context.trace_id,
                models=[m.to_dict() for m in consortium.member_models],
                arbiter=consortium.arbiter,
                judging_method=consortium.judging_method,
                prompt_preview=preview(self.prompt),
            )
            error = self._iterate()
            if error is not None:
                status = "failed"
        except KeyboardInterrupt:
            self.store.mark_interrupted(
                self.context.consortium_id, "Interrupted by the user."
            )
            raise
        except Exception as raised:  # recorded, then reported as a failed run
            # describe_error redacts: the message may echo an API key.
            status, error = "failed", describe_error(raised)
        return self._finish(status, error, start)

    def _iterate(self) -> str | None:
        """Run iterations until done; return why the run failed, if it did."""
        consortium = self.consortium
        previous_synthesis: str | None = None
        refinement_areas: Sequence[str] = ()
        for iteration_id in range(1, consortium.max_iterations + 1):
            with iteration_context(iteration_id):
                self.logger.info(
                    f"Iteration {iteration_id} started", event_type="iteration_start"
                )
                member_prompt = arbiter_module.build_member_prompt(
                    self.prompt,
                    iteration=iteration_id,
                    previous_synthesis=previous_synthesis,
                    refinement_areas=refinement_areas,
                )
                answers = self._ask_members(member_prompt)
                iteration = {"iteration_id": iteration_id, "responses": answers}
                self.iterations.append(iteration)
                usable = [a for a in answers if a["error"] is None]
                if not usable:
                    reasons = "; ".join(f"{a['model']}: {a['error']}" for a in answers)
                    self._end_iteration(iteration_id, None)
                    return f"Every member failed in iteration {iteration_id}: {reasons}"

                decision, error = self._judge(
                    iteration_id, answers, usable, previous_synthesis, refinement_areas
                )
                iteration["decision"] = decision
                self._end_iteration(iteration_id, decision)
                if error is not None:
                    return error
                self.decision = decision
                if self._is_done(iteration_id, decision):
                    return None
                previous_synthesis = decision.get("synthesis")
                refinement_areas = decision.get("refinement_areas") or ()
        return None

    def _is_done(self, iteration_id: int, decision: dict[str, Any]) -> bool:
        consortium = self.consortium
        if iteration_id < consortium.min_iterations:
            return False
        confidence = decision.get("confidence")
        confident = (
            confidence is not None and confidence >= consortium.confidence_threshold
        )
        return confident and not decision.get("needs_iteration", False)

    def _end_iteration(
        self, iteration_id: int, decision: dict[str, Any] | None
    ) -> None:
        self.logger.info(
            f"Iteration {iteration_id} ended",
            event_type="iteration_end",
            confidence=None if decision is None else decision.get("confidence"),
        )

    def _ask_members(self, prompt: str) -> list[dict[str, Any]]:
        members = self.consortium.members
        labels = arbiter_module.answer_labels(len(members))
        pool = self.consortium.member_pool
        tasks = [
            pool.submit(run_in_context(self._ask_member), member, label, prompt)
            for member, label in zip(members, labels)
        ]
        try:
            return [task.result() for task in tasks]
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    def _ask_member(self, member: _Member, label: str, prompt: str) -> dict[str, Any]:
        result = self.consortium.proxy.call(
            member.llm_model,
            prompt,
            model_name=member.model,
            system=self.consortium.system,
            role="member",
            instance=member.instance,
            label=label,
        )
        return _answer(result, member, label)

    def _judge(
        self,
        iteration_id: int,
        answers: list[dict[str, Any]],
        usable: list[dict[str, Any]],
        previous_synthesis: str | None,
        refinement_areas: Sequence[str],
    ) -> tuple[dict[str, Any], str | None]:
        consortium = self.consortium
        labelled = [(a["label"], a["response"]) for a in usable]
        request_id = None
        raw_response = None
        parse_error = None
        usage: dict[str, Any] | None = None
        start = time.perf_counter()
        if consortium.judging_method == "consensus":
            decision = judge_by_consensus(labelled)
            usage = {"input": 0, "output": 0}
        else:
            structured = bool(
                getattr(consortium.arbiter_model, "supports_schema", False)
            )
            arbiter_prompt = arbiter_module.build_arbiter_prompt(
                self.prompt,
                labelled,
                iteration=iteration_id,
                structured=structured,
                previous_synthesis=previous_synthesis,
                refinement_areas=refinement_areas,
            )
            call = consortium.proxy.call(
                consortium.arbiter_model,
                arbiter_prompt,
                model_name=consortium.arbiter,
                role="arbiter",
                schema=arbiter_module.ARBITER_SCHEMA if structured else None,
            )
            request_id = call.request_id
            raw_response = call.text
            usage = {"input": call.input_tokens, "output": call.output_tokens}
            if not call.ok:
                decision, parse_error = {}, f"The arbiter call failed: {call.error}"
            else:
                parsed = arbiter_module.parse_arbiter_reply(
                    call.text or "", [label for label, _ in labelled]
                )
                decision = dict(parsed.decision)
                parse_error = parsed.error
                if parsed.warnings:
                    decision["warnings"] = list(parsed.warnings)
        duration_ms = (time.perf_counter() - start) * 1000

        if parse_error is None:
            self._apply_ranking(decision, usable)
        members = _evaluated_members(answers, decision.get("ranking") or [])
        if parse_error is None and consortium.judging_method == "rank":
            top = next((m for m in members if m.get("rank") == 1), None)
            if top is None:
                parse_error = "The arbiter ranked no answer, so 'rank' has no result."
            else:
                decision["synthesis"] = next(
                    a["response"] for a in answers if a["label"] == top["label"]
                )
        self.store.store_evaluation(
            consortium_id=self.context.consortium_id,
            iteration_id=iteration_id,
            prompt_text=self.prompt,
            arbiter_model=consortium.arbiter,
            evaluated_models=members,
            decision=decision or None,
            token_usage=usage,
            duration_ms=round(duration_ms, 3),
            request_id=request_id,
            judging_method=consortium.judging_method,
            raw_response=raw_response,
            error=parse_error,
        )
        tokens = None
        if usage and (
            usage.get("input") is not None or usage.get("output") is not None
        ):
            tokens = (usage.get("input") or 0) + (usage.get("output") or 0)
        self.logger.log_arbiter_decision(
            consortium.arbiter,
            decision.get("confidence"),
            decision.get("needs_iteration"),
            duration_ms,
            tokens,
            ranking=decision.get("ranked_models"),
            error=parse_error,
            # The arbiter call's own ID, to join this line to its model_call.
            request_id=request_id,
        )
        return decision, parse_error

    @staticmethod
    def _apply_ranking(decision: dict[str, Any], usable: list[dict[str, Any]]) -> None:
        by_label = {a["label"]: a for a in usable}
        ranking = [
            label for label in decision.get("ranking") or [] if label in by_label
        ]
        decision["ranking"] = ranking
        decision["ranked_models"] = [
            {
                "rank": position,
                "label": label,
                "model": by_label[label]["model"],
                "instance": by_label[label]["instance"],
            }
            for position, label in enumerate(ranking, start=1)
        ]

    def _finish(self, status: str, error: str | None, start: float) -> dict[str, Any]:
        duration_ms = (time.perf_counter() - start) * 1000
        metrics = self.context.to_dict()
        decision = self.decision or {}
        synthesis = decision.get("synthesis") if status == "completed" else None
        confidence = decision.get("confidence")
        input_tokens, output_tokens = self._run_tokens()
        self.store.finish_run(
            self.context.consortium_id,
            status=status,
            iteration_count=len(self.iterations),
            final_confidence=confidence,
            synthesis=synthesis,
            error=error,
            duration_ms=round(duration_ms, 3),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        self.logger.info(
            f"Consortium {status} after {len(self.iterations)} "
            f"iteration{'' if len(self.iterations) == 1 else 's'}",
            event_type="consortium_end",
            status=status,
            confidence=confidence,
            duration_ms=round(duration_ms, 2),
            tokens=(input_tokens or 0) + (output_tokens or 0),
            error=error,
        )
        return {
            "consortium_id": self.context.consortium_id,
            "trace_id": self.context.trace_id,
            "status": status,
            "error": error,
            "prompt": self.prompt,
            "synthesis": {
                "synthesis": synthesis,
                "confidence": confidence,
                "analysis": decision.get("analysis"),
                "dissent": decision.get("dissent"),
                "needs_iteration": decision.get("needs_iteration"),
                "refinement_areas": decision.get("refinement_areas") or [],
                "ranking": decision.get("ranking") or [],
                "ranked_models": decision.get("ranked_models") or [],
            },
            "iterations": self.iterations,
            "iteration_count": len(self.iterations),
            "arbiter": self.consortium.arbiter,
            "judging_method": self.consortium.judging_method,
            "duration_ms": round(duration_ms, 3),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "metrics": metrics["metrics"],
            "token_usage": metrics["token_usage"],
        }

    def _run_tokens(self) -> tuple[int | None, int | None]:
        """This run's own token totals, from its recorded calls."""
        row = self.store.query(
            "select sum(input_tokens) as input, sum(output_tokens) as output "
            "from model_calls where consortium_id = ?",
            [self.context.consortium_id],
        )[0]
        return row["input"], row["output"]


def _answer(result: CallResult, member: _Member, label: str) -> dict[str, Any]:
    error = result.error
    if error is None and not (result.text or "").strip():
        error = "The model returned an empty reply."
    return {
        "model": member.model,
        "instance": member.instance,
        "label": label,
        "request_id": result.request_id,
        "response": result.text,
        "error": error,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "duration_ms": round(result.duration_ms, 3),
        "attempts": len(result.attempts) or 1,
    }


def _evaluated_members(
    answers: list[dict[str, Any]], ranking: Sequence[str]
) -> list[dict[str, Any]]:
    positions = {label: position for position, label in enumerate(ranking, start=1)}
    members = []
    for answer in answers:
        rank = positions.get(answer["label"])
        members.append(
            {
                "model": answer["model"],
                "instance": answer["instance"],
                "label": answer["label"],
                "request_id": answer["request_id"],
                "rank": rank,
                "chosen": rank == 1,
                "input_tokens": answer["input_tokens"],
                "output_tokens": answer["output_tokens"],
                "duration_ms": answer["duration_ms"],
                "error": answer["error"],
            }
        )
    return members
