import pathlib
import sys

import llm.plugins
import pytest

TESTS = pathlib.Path(__file__).parent
sys.path.insert(0, str(TESTS))

import scripted_model  # noqa: E402

if not llm.plugins.pm.is_registered(scripted_model):
    llm.plugins.pm.register(scripted_model, name="scripted_model")


@pytest.fixture(autouse=True)
def isolated_user_paths(tmp_path, monkeypatch):
    """Keep every test away from the real ~/.llm and ~/.llm_consortium."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm-user"))
    monkeypatch.setenv("LLM_CONSORTIUM_DB", str(tmp_path / "evaluations.db"))
    monkeypatch.setenv("LLM_CONSORTIUM_LOG_FILE", str(tmp_path / "consortium.log"))
    monkeypatch.delenv("SCRIPTED_MODELS", raising=False)
    monkeypatch.delenv("LLM_CONSORTIUM_LOG_LEVEL", raising=False)
    scripted_model.extra_scripts.clear()
    scripted_model.reset_call_counts()
    yield
    scripted_model.extra_scripts.clear()


@pytest.fixture
def add_scripted_model():
    """Register a scripted model for this test: ``add_scripted_model(id, **script)``."""

    def add(model_id, **script):
        scripted_model.extra_scripts[model_id] = script
        return model_id

    return add


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "evaluations.db"
