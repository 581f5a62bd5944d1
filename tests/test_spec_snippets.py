"""The specification's own snippets, verbatim but for the package's name."""

import pathlib
import sqlite3
import subprocess
import sys

import pytest

UNIT_TEST_SNIPPETS = [
    """
from recorder.tracing import consortium_context
with consortium_context() as ctx:
    assert ctx.consortium_id is not None
    print('✅ Tracing context works')
""",
    """
from recorder.logger import StructuredLogger
logger = StructuredLogger('test')
logger.info('Test', event_type='test')
print('✅ Logger works')
""",
    """
from recorder.evaluation_store import EvaluationStore
store = EvaluationStore(':memory:')
print('✅ Evaluation store works')
""",
]

INTEGRATION_TEST = """
from recorder.tracing import consortium_context
from recorder.logger import StructuredLogger
from recorder.evaluation_store import EvaluationStore

# Complete workflow test
with consortium_context() as ctx:
    logger = StructuredLogger("test")
    store = EvaluationStore(":memory:")
    
    # Simulate model calls
    for model in ["gpt-4", "claude-3"]:
        ctx.add_tokens(model, 150)
        ctx.increment_model_calls()
        logger.log_model_call(model, "prompt", "response", 150, 1200, 0.85)
    
    # Store evaluation
    store.store_evaluation(
        consortium_id=ctx.consortium_id,
        iteration_id=1,
        prompt_text="Test",
        arbiter_model="test",
        evaluated_models=["gpt-4", "claude-3"],
        decision={"confidence": 0.92, "synthesis": "OK"},
        token_usage=ctx.token_usage,
        duration_ms=1000
    )
    
    # Verify leaderboard
    leaderboard = store.get_leaderboard()
    assert len(leaderboard) == 2
    print(f"✅ Integration test passed: {leaderboard[0]['model']}")
"""

SPEC_SQL = [
    """SELECT consortium_id, iteration_id, confidence FROM evaluations;""",
    """SELECT model, AVG(confidence) as avg_conf 
   FROM model_performance 
   GROUP BY model 
   ORDER BY avg_conf DESC 
   LIMIT 1;""",
    """SELECT model, SUM(token_usage) as total_tokens 
   FROM model_performance 
   GROUP BY model;""",
    """SELECT consortium_id, iteration_id, error 
   FROM evaluations 
   WHERE error IS NOT NULL 
   ORDER BY timestamp DESC 
   LIMIT 10;""",
    """SELECT * FROM evaluations WHERE consortium_id='cons-xyz';""",
]


def run_python(code, tmp_path):
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )


@pytest.mark.parametrize("snippet", UNIT_TEST_SNIPPETS)
def test_unit_test_snippets(snippet, tmp_path):
    completed = run_python(snippet, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "✅" in completed.stdout


def test_integration_test_snippet(tmp_path):
    completed = run_python(INTEGRATION_TEST, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("✅ Integration test passed: ")
    assert completed.stdout.split(": ")[1].strip() in {"gpt-4", "claude-3"}


def test_logger_snippet_writes_json_line_to_log_file(tmp_path):
    completed = run_python(UNIT_TEST_SNIPPETS[1], tmp_path)
    assert completed.returncode == 0, completed.stderr
    log_file = tmp_path / "consortium.log"
    line = log_file.read_text().splitlines()[-1]
    assert '"event_type": "test"' in line
    assert '"message": "Test"' in line


def test_basic_usage_example(tmp_path):
    code = """
from recorder import create_consortium
from recorder.tracing import consortium_context
from recorder.evaluation_store import EvaluationStore

consortium = create_consortium(
    models=["scripted-member:2", "llama3:8b:3"],
    arbiter="scripted-arbiter",
    judging_method="default"
)

with consortium_context() as ctx:
    result = consortium.orchestrate(
        prompt="Explain quantum entanglement in simple terms",
        enable_tracing=True
    )
    
    print(f"Consortium ID: {ctx.consortium_id}")
    print(f"Total tokens: {ctx.metrics['total_tokens']}")
    print(f"Final confidence: {result['synthesis']['confidence']}")

store = EvaluationStore()
leaderboard = store.get_leaderboard(limit=10)
for entry in leaderboard:
    print(f"{entry['model']}: {entry['avg_confidence']:.3f}")
"""
    tests_folder = str(pathlib.Path(__file__).parent)
    prelude = (
        f"import sys, llm.plugins; sys.path.insert(0, {tests_folder!r}); "
        "import scripted_model; "
        "llm.plugins.pm.register(scripted_model, name='scripted_model')\n"
    )
    completed = run_python(prelude + code, tmp_path)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("Consortium ID: cons-")
    assert int(lines[1].split(": ")[1]) > 0
    assert lines[2] == "Final confidence: 0.9"
    assert sorted(lines[3:]) == ["llama3:8b: 0.900", "scripted-member: 0.900"]


def test_spec_sql_runs_unchanged(tmp_path, add_scripted_model):
    from recorder import create_consortium

    add_scripted_model("flaky-arbiter", replies=["<nonsense/>"])
    db_path = tmp_path / "spec.db"
    create_consortium(
        ["scripted-member:2", "scripted-no-usage"],
        arbiter="scripted-arbiter",
        db_path=str(db_path),
    ).orchestrate("First question")
    create_consortium(
        ["scripted-member"], arbiter="flaky-arbiter", db_path=str(db_path)
    ).orchestrate("Second question")

    conn = sqlite3.connect(db_path)
    results = [conn.execute(sql).fetchall() for sql in SPEC_SQL]
    assert len(results[0]) == 2
    assert results[1][0][0] in {"scripted-member", "scripted-no-usage"}
    assert {row[0] for row in results[2]} == {"scripted-member", "scripted-no-usage"}
    assert len(results[3]) == 1 and "not a usable decision" in results[3][0][2]
