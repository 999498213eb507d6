"""Hostile generated code inside a real job: each attempt ends as CodeExecuted(failed) and the job goes on."""
# ruff: noqa: E501 - the hostile programs read best as one string each

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from commands.recorder_store import SqliteEventStore
from commands.unit_of_work import execute, load_job
from domain.envelope import Context
from domain.job import RequestJob
from processors.agents import codegen as codegen_agent
from processors.codegen import GeneratedCode, generate_code
from processors.runtime import LocalRuntime
from processors.workbench import Workbench

HEADER = "import polars as pl\nimport math\n\n"
HOSTILE = {
    "socket": "import socket\n\ndef feature(df, ref):\n    socket.create_connection(('127.0.0.1', 5432))\n    return df[df.columns[0]]\n",
    "passwd": "def feature(df, ref):\n    open('/etc/passwd', 'a').write('x')\n    return df[df.columns[0]]\n",
    "os_system": "import os\n\ndef feature(df, ref):\n    os.system('true')\n    return df[df.columns[0]]\n",
    "subprocess": "import subprocess\n\ndef feature(df, ref):\n    subprocess.run(['true'])\n    return df[df.columns[0]]\n",
    "dunder_import": "def feature(df, ref):\n    __import__('os').system('true')\n    return df[df.columns[0]]\n",
    "bases_walk": "def feature(df, ref):\n    ().__class__.__bases__[0].__subclasses__()\n    return df[df.columns[0]]\n",
    "fork": "import os\n\ndef feature(df, ref):\n    os.fork()\n    return df[df.columns[0]]\n",
    "loop": HEADER + "def feature(df, ref):\n    while True:\n        pass\n",
    "memory": HEADER
    + "import numpy as np\n\ndef feature(df, ref):\n    x = np.ones(10 * 2**30 // 8)\n    return pl.Series(x[: df.height])\n",
    "pl_os": HEADER + "def feature(df, ref):\n    pl.os.system('true')\n    return df[df.columns[0]]\n",
}
EXPECTED = {
    "socket": "socket",
    "passwd": "open",
    "os_system": "os",
    "subprocess": "subprocess",
    "dunder_import": "__import__",
    "bases_walk": "__class__",
    "fork": "os",
    "loop": "cpu limit|timed out",  # whichever of the CPU and wall-clock limits trips first
    "memory": "memory",
    "pl_os": "os",
}


def hostile_generate(assignments: dict[str, str]):  # type: ignore[no-untyped-def]
    def generate(spec):  # type: ignore[no-untyped-def]
        real = generate_code(spec)
        key = real.code_hash
        if key not in assignments and len(assignments) < len(HOSTILE):
            assignments[key] = list(HOSTILE)[len(assignments)]
        if key in assignments:
            code = HOSTILE[assignments[key]]
            return GeneratedCode(code, "polars", hashlib.sha256(code.encode()).hexdigest(), None, None)
        return real

    return generate


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Path]:
    rng = np.random.default_rng(0)
    n = 600
    income = rng.lognormal(8, 0.5, n)
    debt = income * rng.uniform(0.1, 1.0, n)
    y = rng.random(n) < 1 / (1 + np.exp(-10 * (debt / income - 0.55)))
    path = tmp_path / "t.csv"
    pl.DataFrame({"Income": income, "Debt": debt, "Age": rng.integers(18, 70, n), "y": y.astype(int)}).write_csv(path)
    yield path


def test_hostile_code_fails_alone_and_the_job_completes(tmp_path: Path, table: Path, monkeypatch) -> None:
    passwd_before = Path("/etc/passwd").read_bytes()
    assignments: dict[str, str] = {}
    monkeypatch.setattr(codegen_agent, "generate_code", hostile_generate(assignments))
    store = SqliteEventStore(tmp_path / "events.db")
    command = RequestJob("j", "p", str(table), None, "y", "classification", 60.0, 0, 1, 40)
    execute(store, [(command, Context(at=datetime.now(UTC), correlation_id="j"))])
    bench = Workbench(
        datasets_dir=tmp_path / "datasets",
        artifacts_dir=tmp_path / "artifacts",
        sandbox_options={"wall_seconds": 3.0, "cpu_seconds": 2.0, "memory_bytes": 2 * 2**30},
    )
    runtime = LocalRuntime(store, bench)
    try:
        runtime.run_until_idle(until=lambda: load_job(store, "j").terminal)  # type: ignore[union-attr]
    finally:
        runtime.stop()
    job = load_job(store, "j")
    assert job is not None and job.status == "completed", job
    executed = {e.event.feature_id: e.event for e in store.read_all(limit=10_000) if e.event_type == "CodeExecuted"}
    codes = {
        e.event.feature_id: e.event.code_hash for e in store.read_all(limit=10_000) if e.event_type == "CodeGenerated"
    }
    by_attack = {}
    for fid, code_hash in codes.items():
        for attack, code in HOSTILE.items():
            if hashlib.sha256(code.encode()).hexdigest() == code_hash:
                by_attack[attack] = executed[fid]
    assert set(by_attack) == set(HOSTILE)
    for attack, result in by_attack.items():
        assert not result.ok, attack
        reason = (result.reason or "").lower()
        assert any(word in reason for word in EXPECTED[attack].lower().split("|")), (attack, result.reason)
    assert any(e.ok for e in executed.values())  # honest candidates still ran
    assert Path("/etc/passwd").read_bytes() == passwd_before
    assert "pytest" in sys.modules  # and we are still here
