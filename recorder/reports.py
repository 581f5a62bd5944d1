"""The analysis commands: leaderboard, runs, run-info, export-training."""

import click


def register_report_commands(group: click.Group) -> None:
    """Add the analysis commands to ``group``."""
