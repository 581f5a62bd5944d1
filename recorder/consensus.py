"""An arbiter that needs no model: the answer the others agree with most wins.

Similarity is the cosine between two texts' counts of words and of adjacent word
pairs, after lowercasing and dropping punctuation. Unlike a Jaccard index of word
sets, it weighs the words an answer stresses, and it is gentler on length: a
short answer whose words all recur in a long one scores about the square root of
what Jaccard would give, so a terse correct answer is not cast as a dissenter.
The word pairs add a little word order ("not good, bad" and "bad, not good"
differ). It is symmetric, in [0, 1], and 1.0 for texts with the same words in
the same order.

:func:`judge_by_consensus` returns a decision with the keys of an arbiter's:

- centrality of an answer = its mean similarity to every other answer; an
  answer with no words has similarity 0 to everything;
- synthesis = the text of the most central answer (the medoid); ties go to the
  earlier label (A before B, Z before AA);
- confidence = the medoid's centrality, so 1.0 when every answer says the same
  thing and near 0 when they share nothing;
- one answer: it is the synthesis, with confidence 0.0, since nothing
  corroborates it; no answers, or only empty ones: an empty synthesis with
  confidence 0.0;
- ranking = labels by centrality, highest first, ties by label;
  needs_iteration = False and refinement_areas = [] (nothing to refine with).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

CONSENSUS_ARBITER = "consensus"

_WORD_PATTERN = re.compile(r"\w+")
# Centralities equal to this many places count as a tie.
_TIE_PLACES = 12


def _features(text: str) -> Counter:
    words = _WORD_PATTERN.findall(text.lower().replace("_", " "))
    features = Counter(words)
    features.update(f"{first} {second}" for first, second in zip(words, words[1:]))
    return features


def _cosine(first: Counter, second: Counter) -> float:
    if first == second:
        return 1.0
    if not first or not second:
        return 0.0
    shared = sorted(first.keys() & second.keys())
    dot = sum(first[feature] * second[feature] for feature in shared)
    norms = math.sqrt(sum(count * count for count in first.values())) * math.sqrt(
        sum(count * count for count in second.values())
    )
    return min(1.0, dot / norms)


def similarity(first: str, second: str) -> float:
    """Cosine similarity of word and word-pair counts, in [0, 1]."""
    return _cosine(_features(first), _features(second))


def _label_order(label: str) -> tuple[int, str]:
    return len(label), label


def judge_by_consensus(answers: Sequence[tuple[str, str]]) -> dict:
    """Judge ``(label, text)`` answers by agreement: the medoid is the synthesis."""
    labels = [label for label, _ in answers]
    texts = {label: text for label, text in answers}
    features = {label: _features(text) for label, text in answers}
    if not any(features.values()):
        count = len(answers)
        return _decision(
            synthesis="",
            confidence=0.0,
            analysis=f"{count} answer{'s' if count != 1 else ''}, none with any"
            " words; nothing to agree on.",
            dissent=None,
            ranking=sorted(labels, key=_label_order),
        )

    pair_similarity: dict[tuple[str, str], float] = {}
    for index, first in enumerate(labels):
        for second in labels[index + 1 :]:
            both_have_words = bool(features[first]) and bool(features[second])
            value = (
                _cosine(features[first], features[second]) if both_have_words else 0.0
            )
            pair_similarity[first, second] = pair_similarity[second, first] = value

    others = len(labels) - 1
    centrality = {
        label: round(
            sum(pair_similarity[label, other] for other in labels if other != label)
            / others,
            _TIE_PLACES,
        )
        if others
        else 0.0
        for label in labels
    }
    ranking = sorted(
        labels, key=lambda label: (-centrality[label], _label_order(label))
    )
    medoid, outlier = ranking[0], ranking[-1]

    if not others:
        analysis = "1 answer; nothing to compare it with."
        dissent = None
    elif min(pair_similarity.values()) == 1.0:
        analysis = f"{len(labels)} answers, all saying the same thing."
        dissent = None
    else:
        mean_pairwise = sum(pair_similarity.values()) / len(pair_similarity)
        analysis = (
            f"{len(labels)} answers; mean pairwise similarity {mean_pairwise:.2f};"
            f" {medoid} is the most central."
        )
        dissent = (
            f"{outlier} is the least central (mean similarity"
            f" {centrality[outlier]:.2f})."
        )
    return _decision(
        synthesis=texts[medoid],
        confidence=centrality[medoid],
        analysis=analysis,
        dissent=dissent,
        ranking=ranking,
    )


def _decision(
    *,
    synthesis: str,
    confidence: float,
    analysis: str,
    dissent: str | None,
    ranking: list[str],
) -> dict:
    return {
        "synthesis": synthesis,
        "confidence": confidence,
        "analysis": analysis,
        "dissent": dissent,
        "needs_iteration": False,
        "refinement_areas": [],
        "ranking": ranking,
    }
