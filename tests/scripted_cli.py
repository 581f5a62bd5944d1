"""Run ``consortium-record`` in a subprocess with the scripted test models.

Usage: ``python tests/scripted_cli.py run -m scripted-member ...``; scripts for
extra models come from the ``SCRIPTED_MODELS`` environment variable.
"""

import pathlib
import sys

import llm.plugins

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import scripted_model  # noqa: E402

llm.plugins.pm.register(scripted_model, name="scripted_model")

from recorder.cli import cli  # noqa: E402

if __name__ == "__main__":
    cli()
