import pytest

from recorder.arbiter import ARBITER_KEYS, answer_labels
from recorder.consensus import CONSENSUS_ARBITER, judge_by_consensus, similarity


def labelled(*texts):
    return list(zip(answer_labels(len(texts)), texts))


def test_similarity_of_a_hand_computed_pair():
    # Shared: "the", "cat", "the cat" (3); each text has 5 features.
    assert similarity("the cat sat", "the cat ran") == pytest.approx(3 / 5)


@pytest.mark.parametrize(
    "first,second,expected",
    [
        ("Same text.", "Same text.", 1.0),
        ("Hello, World!", "hello world", 1.0),
        ("", "", 1.0),
        ("", "words", 0.0),
        ("apples oranges", "bricks mortar", 0.0),
    ],
)
def test_similarity_pinned_values(first, second, expected):
    assert similarity(first, second) == expected


def test_similarity_is_symmetric_and_bounded():
    texts = [
        "The sky is blue because of Rayleigh scattering.",
        "Rayleigh scattering makes the sky blue, the sky, the sky.",
        "not good, bad",
        "bad, not good",
        "",
    ]
    for first in texts:
        for second in texts:
            value = similarity(first, second)
            assert value == similarity(second, first)
            assert 0.0 <= value <= 1.0


def test_similarity_sees_some_word_order():
    value = similarity("not good, bad", "bad, not good")
    assert 0.0 < value < 1.0


def test_identical_answers():
    decision = judge_by_consensus(labelled(*["Paris is the capital of France."] * 3))

    assert decision == {
        "synthesis": "Paris is the capital of France.",
        "confidence": 1.0,
        "analysis": "3 answers, all saying the same thing.",
        "dissent": None,
        "needs_iteration": False,
        "refinement_areas": [],
        "ranking": ["A", "B", "C"],
    }


def test_majority_camp_wins():
    decision = judge_by_consensus(labelled("x y z", "x y z", "x y z", "p q", "p q"))

    assert decision["synthesis"] == "x y z"
    assert decision["confidence"] == 0.5  # two of four others agree fully
    assert decision["ranking"] == ["A", "B", "C", "D", "E"]
    assert decision["analysis"] == (
        "5 answers; mean pairwise similarity 0.40; A is the most central."
    )
    assert decision["dissent"] == "E is the least central (mean similarity 0.25)."


def test_equal_camps_tie_by_label():
    decision = judge_by_consensus(
        labelled("no never", "yes it is", "no never", "yes it is")
    )

    assert decision["synthesis"] == "no never"
    assert decision["confidence"] == pytest.approx(1 / 3)
    assert decision["ranking"] == ["A", "B", "C", "D"]


def test_one_outlier_is_ranked_last_and_named_in_dissent():
    decision = judge_by_consensus(
        labelled(
            "The sky is blue because of Rayleigh scattering.",
            "Bananas are yellow.",
            "The sky is blue due to Rayleigh scattering of sunlight.",
            "Rayleigh scattering is why the sky is blue.",
        )
    )

    assert decision["ranking"] == ["A", "D", "C", "B"]
    assert decision["synthesis"] == "The sky is blue because of Rayleigh scattering."
    assert decision["confidence"] == pytest.approx(0.4468, abs=1e-4)
    assert decision["dissent"] == "B is the least central (mean similarity 0.00)."


def test_empty_answers_rank_last_and_agree_with_nothing():
    decision = judge_by_consensus(labelled("", "same words", "  ", "same words"))

    assert decision["synthesis"] == "same words"
    assert decision["confidence"] == pytest.approx(1 / 3)
    assert decision["ranking"] == ["B", "D", "A", "C"]


def test_only_empty_answers():
    decision = judge_by_consensus(labelled("", "  ", "?!"))

    assert decision["synthesis"] == ""
    assert decision["confidence"] == 0.0
    assert decision["ranking"] == ["A", "B", "C"]
    assert (
        decision["analysis"] == "3 answers, none with any words; nothing to agree on."
    )


def test_single_member_is_the_synthesis_without_corroboration():
    decision = judge_by_consensus([("A", "Only answer.")])

    assert decision["synthesis"] == "Only answer."
    assert decision["confidence"] == 0.0
    assert decision["ranking"] == ["A"]
    assert decision["dissent"] is None
    assert decision["analysis"] == "1 answer; nothing to compare it with."


def test_no_answers():
    decision = judge_by_consensus([])

    assert decision["synthesis"] == ""
    assert decision["confidence"] == 0.0
    assert decision["ranking"] == []


def test_ties_follow_label_order_not_string_order():
    decision = judge_by_consensus([("AA", "same"), ("B", "same"), ("Z", "other")])

    assert decision["ranking"] == ["B", "AA", "Z"]
    assert decision["synthesis"] == "same"


def test_decision_has_the_arbiter_keys_and_types():
    decision = judge_by_consensus(labelled("one two", "two three", "three four"))

    assert tuple(decision) == ARBITER_KEYS
    assert isinstance(decision["synthesis"], str)
    assert isinstance(decision["confidence"], float)
    assert decision["needs_iteration"] is False
    assert decision["refinement_areas"] == []
    assert CONSENSUS_ARBITER == "consensus"


def test_sixteen_long_answers():
    answers = labelled(
        *[
            " ".join(f"word{(index * 7 + position) % 300}" for position in range(600))
            for index in range(16)
        ]
    )

    decision = judge_by_consensus(answers)

    assert sorted(decision["ranking"]) == sorted(answer_labels(16))
    assert 0.0 <= decision["confidence"] <= 1.0
