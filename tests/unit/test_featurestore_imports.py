"""Each feature-store module imports first, in a fresh interpreter: no import cycle through the agents
(values.py once imported processors.agents, whose schema agent imports values.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(
    "processors.featurestore" + ("" if p.stem == "__init__" else f".{p.stem}")
    for p in (REPO / "processors" / "featurestore").glob("*.py")
)


def test_the_modules_are_found() -> None:
    assert "processors.featurestore.online" in MODULES and "processors.featurestore.values" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_a_featurestore_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
