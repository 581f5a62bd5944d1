"""The ways a consortium's answers can be judged."""

JUDGING_METHODS = ("default", "rank", "consensus")
