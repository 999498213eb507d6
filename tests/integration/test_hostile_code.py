"""Hostile generated code inside a real job: each attempt ends as CodeExecuted(failed) and the job goes on."""
# ruff: noqa: E501 - the hostile programs read best as one string each

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from commands.recorder_store import SqliteEventStore
from commands.unit_of_work import execute, load_job
from domain.envelope import Context
from domain.job import RequestJob
from processors.agents import codegen as codegen_agent
from processors.codegen import GeneratedCode, generate_code
from processors.runtime import LocalRuntime
from processors.workbench import Workbench
from sandbox import Sandbox, SandboxLimits

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


# --- file readers: refused by the policy, by the module proxies, and by the empty root ----------
READERS = {
    "pl_sql": "import polars as pl\n\ndef feature(df, ref):\n    return pl.sql(\"SELECT * FROM read_csv('/etc/passwd')\").collect()[:, 0]\n",
    "sql_context": "import polars as pl\n\ndef feature(df, ref):\n    return pl.SQLContext(frames={'df': df}).execute('SELECT 1').collect()[:, 0]\n",
    "sql_expr": "import polars as pl\n\ndef feature(df, ref):\n    return df.select(pl.sql_expr('x * 2')).to_series()\n",
    "df_sql": "def feature(df, ref):\n    return df.sql(\"SELECT * FROM read_parquet('/tmp/x.parquet')\")[:, 0]\n",
    "read_csv": "import polars as pl\n\ndef feature(df, ref):\n    return pl.read_csv('/etc/passwd')[:, 0]\n",
    "scan_parquet": "import polars as pl\n\ndef feature(df, ref):\n    return pl.scan_parquet('/tmp/x.parquet').collect()[:, 0]\n",
    "from_import": "from polars import read_parquet\n\ndef feature(df, ref):\n    return read_parquet('/tmp/x.parquet')[:, 0]\n",
    "deserialize": "import polars as pl\n\ndef feature(df, ref):\n    return pl.LazyFrame.deserialize('/tmp/x.bin').collect()[:, 0]\n",
    "duckdb": "import duckdb\n\ndef feature(df, ref):\n    return duckdb.sql(\"SELECT * FROM read_csv('/etc/passwd')\").pl()[:, 0]\n",
    "np_load": "import numpy as np\n\ndef feature(df, ref):\n    return np.loadtxt('/etc/passwd')\n",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxLimits(cpu_seconds=5, wall_seconds=10, memory_bytes=2**30)) as box:
        box.start()
        yield box


@pytest.fixture
def secret_parquet(tmp_path: Path) -> Path:
    """Another tenant's training rows, readable by anyone on the host."""
    path = tmp_path / "other-tenant.parquet"
    pl.DataFrame({"secret": ["MARKER-7d41c0"] * 3}).write_parquet(path)
    path.chmod(0o644)
    for parent in [tmp_path, *tmp_path.parents]:
        if parent != Path("/"):
            parent.chmod(parent.stat().st_mode | 0o005)
    return path


@pytest.mark.parametrize("name", list(READERS))
def test_readers_are_refused_by_the_policy(sandbox: Sandbox, name: str) -> None:
    result = sandbox.run(READERS[name], pa.table({"x": [1.0, 2.0]}))
    assert not result.ok and result.violation == "policy", result


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        ("pl.sql('SELECT 1')", "'polars.sql' is not available"),
        ("pl.SQLContext()", "'polars.SQLContext' is not available"),
        ("pl.sql_expr('x')", "'polars.sql_expr' is not available"),
        ("pl.read_parquet(PATH)", "'polars.read_parquet' is not available"),
        ("pl.scan_parquet(PATH)", "'polars.scan_parquet' is not available"),
        ("pl.read_csv('/etc/passwd')", "'polars.read_csv' is not available"),
        ("np.loadtxt('/etc/passwd')", "'numpy.loadtxt' is not available"),
        ("df.sql('SELECT * FROM read_parquet(' + repr(PATH) + ')')[:, 0]", "'polars.DataFrame.sql' is not available"),
        ("df.lazy().sql('SELECT 1').collect()[:, 0]", "'polars.LazyFrame.sql' is not available"),
        ("pl.LazyFrame.deserialize(PATH).collect()[:, 0]", "'polars.LazyFrame.deserialize' is not available"),
        ("df.select(pl.Expr.deserialize(PATH))[:, 0]", "'polars.Expr.deserialize' is not available"),
    ],
)
def test_module_proxies_refuse_readers_at_runtime(
    sandbox: Sandbox, secret_parquet: Path, call: str, fragment: str
) -> None:
    code = f"import polars as pl\nimport numpy as np\n\ndef feature(df, ref):\n    return {call.replace('PATH', repr(str(secret_parquet)))}\n"
    result = sandbox._execute([code], pa.table({"x": [1.0, 2.0]}), None)[0]  # past the static policy
    assert not result.ok and result.violation == "policy", result
    assert fragment in (result.reason or ""), result.reason


@pytest.mark.skipif(os.geteuid() != 0, reason="the empty root (chroot) needs root")
@pytest.mark.parametrize(
    "body",
    [
        'return real_pl.SQLContext().execute("SELECT * FROM read_parquet(PATH)").collect()[:, 0]',
        "return real_pl.sql(\"SELECT * FROM read_csv('/etc/passwd')\").collect()[:, 0]",
        "return pl.DataFrame({'t': [real_open('/etc/passwd').read()]})[:, 0]",
        "return pl.DataFrame({'t': [real_open(PATH, 'rb').read()]})[:, 0]",
        "return real_pl.read_parquet(PATH)[:, 0]",
        "return real_pl.read_csv('/etc/passwd')[:, 0]",
    ],
    ids=["sql-parquet", "sql-passwd", "open-passwd", "open-parquet", "read-parquet", "read-csv"],
)
def test_a_reader_that_slipped_through_finds_no_files(sandbox: Sandbox, secret_parquet: Path, body: str) -> None:
    """The OS layer alone: real builtins and the real polars module, fetched past every check."""
    escape = (
        "import polars as pl\n"
        "wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        "g = wrap.__init__.__globals__\n"
        "real_open = g['__builtins__']['open']\n"
        "real_pl = g['sys'].modules['polars']\n\n"
        "def feature(df, ref):\n    " + body.replace("PATH", repr(str(secret_parquet))) + "\n"
    )
    assert Path("/etc/passwd").read_text() and secret_parquet.read_bytes()  # readable outside the sandbox
    result = sandbox._execute([escape], pa.table({"x": [1.0, 2.0]}), None)[0]
    assert not result.ok and result.violation == "error", result
    reason = result.reason or ""
    assert "MARKER-7d41c0" not in reason and "root:" not in reason
    assert any(word in reason.lower() for word in ("no such file", "not found", "filenotfound")), reason


def test_a_sandbox_reply_without_results_fails_those_codes_not_the_agent(
    tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first sandbox request gets a reply without results (as after a killed worker):
    its codes end as CodeExecuted(failed) with a reason, and the job completes."""
    real = Sandbox._request
    calls: list[int] = []

    def garbled(self: Sandbox, worker: Any, request: dict[str, Any], n_codes: int) -> tuple[dict[str, Any], bytes]:
        calls.append(len(request["codes"]))
        if len(calls) == 1:
            return {"op": "stored"}, b""
        return real(self, worker, request, n_codes)

    monkeypatch.setattr(Sandbox, "_request", garbled)
    store = SqliteEventStore(tmp_path / "events.db")
    command = RequestJob("j", "p", str(table), None, "y", "classification", 60.0, 0, 1, 40)
    execute(store, [(command, Context(at=datetime.now(UTC), correlation_id="j"))])
    bench = Workbench(datasets_dir=tmp_path / "datasets", artifacts_dir=tmp_path / "artifacts")
    runtime = LocalRuntime(store, bench)
    try:
        runtime.run_until_idle(until=lambda: load_job(store, "j").terminal)  # type: ignore[union-attr]
    finally:
        runtime.stop()
    job = load_job(store, "j")
    assert job is not None and job.status == "completed", job
    executed = [e.event for e in store.read_all(limit=10_000) if e.event_type == "CodeExecuted"]
    failed = [e for e in executed if not e.ok]
    assert failed and all("without results" in (e.reason or "") for e in failed), failed
    assert len(failed) == calls[0]  # exactly the codes of the garbled request
    assert any(e.ok for e in executed)
