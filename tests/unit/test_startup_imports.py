"""The CLI and the API start without MLflow or Feast: each takes seconds to import (see bench/startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("mlflow", "feast", "matplotlib")
PROBE = """
import json, sys
{imports}
print(json.dumps(sorted({{name.partition(".")[0] for name in sys.modules}})))
"""


@pytest.mark.parametrize(
    "imports",
    [
        "import gateway.cli",
        "import gateway.app",
        # what `afep serve` builds before it answers: the app and the embedded runtime with every agent
        "from gateway.app import create_app\nfrom gateway.runtime_wiring import build_runtime\n"
        "import processors.agents",
    ],
)
def test_start_up_imports_neither_mlflow_nor_feast(imports: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "gateway" in loaded
    assert not loaded & set(HEAVY), f"{imports!r} imports {sorted(loaded & set(HEAVY))}"
