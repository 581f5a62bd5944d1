"""Run traced LLM consortiums and record every step in evaluations.db."""
