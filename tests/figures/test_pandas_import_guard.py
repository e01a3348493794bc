"""The pandas import race (see explorer/figures/__init__.py), checked in a fresh interpreter so that whatever
tests ran before cannot have imported pandas already and hidden a missing guard."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
assert "pandas" not in sys.modules, "pandas imported before the figures package: the probe proves nothing"
import plotly.graph_objects  # noqa: F401
assert "pandas" not in sys.modules, "plotly imports pandas by itself now: revisit the guard"
import explorer.figures.attention  # any figure module
pandas = sys.modules.get("pandas")
assert pandas is not None, "importing a figure module did not import pandas: the guard is gone"
assert hasattr(pandas, "Series") and hasattr(pandas, "DataFrame"), "pandas only partly initialised"
print("guarded")
"""


def test_a_figure_module_cannot_run_before_pandas_is_complete():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "guarded" in result.stdout, result.stderr[-2000:]
