"""Real worker processes: correct values, and every escape attempt ends as ok=False."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from sandbox import Sandbox, SandboxLimits, SandboxResult
from sandbox import runner as sandbox_runner

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=5, memory_bytes=2**30, file_bytes=2**20)
REPO_ROOT = Path(__file__).resolve().parents[2]

FREQ = """
import polars as pl

def feature(df: pl.DataFrame, ref: pl.DataFrame) -> pl.Series:
    counts = ref.group_by("city").agg(pl.len().alias("_n"))
    joined = df.select("city").join(counts, on="city", how="left", maintain_order="left")
    return joined["_n"].fill_null(0).cast(pl.Float64)
"""

# Gets the real `os` module and real builtins by walking object subclasses: only possible
# when the static check is bypassed, so it exercises the OS-level layers underneath.
ESCAPE = """
import polars as pl
wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == "_wrap_close"][0]
g = wrap.__init__.__globals__
os = g["sys"].modules["os"]
real_import = g["__builtins__"]["__import__"]

def feature(df, ref):
    {body}
    return pl.Series([0.0] * df.height)
"""


@pytest.fixture(scope="module")
def table() -> pa.Table:
    rng = np.random.default_rng(7)
    n = 1000
    return pa.table({"city": rng.choice(["a", "b", "c", "d"], n), "x": rng.normal(size=n), "y": rng.random(n)})


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(LIMITS) as box:
        box.start()
        yield box


def escape(body: str) -> str:
    return ESCAPE.format(body=body)


def assert_failed(result: SandboxResult, violation: str, *fragments: str) -> None:
    assert not result.ok and result.values is None, result
    assert result.violation == violation, result
    for fragment in fragments:
        assert fragment in (result.reason or ""), result.reason


# --- correct numbers ----------------------------------------------------------------------
def test_valid_feature_values(sandbox: Sandbox, table: pa.Table) -> None:
    result = sandbox.run(FREQ, table)
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    expected = df.select(pl.len().over("city").cast(pl.Float64)).to_series().to_numpy()
    assert result.ok and result.violation is None and result.reason is None
    assert result.values is not None and result.values.shape == (table.num_rows, 1)
    np.testing.assert_array_equal(result.values[:, 0], expected)


def test_fitted_feature_with_several_fits(sandbox: Sandbox, table: pa.Table) -> None:
    rng = np.random.default_rng(1)
    fits = [rng.random(table.num_rows) < p for p in (0.2, 0.5, 0.8)]
    code = """
import polars as pl

def feature(df, ref):
    means = ref.group_by("city").agg(pl.col("x").mean().alias("m"))
    return df.join(means, on="city", how="left", maintain_order="left")["m"]
"""
    result = sandbox.run(code, table, fits)
    assert result.ok, result.reason
    assert result.values is not None and result.values.shape == (table.num_rows, 3)
    cities, xs = np.asarray(table["city"]), np.asarray(table["x"])
    for i, mask in enumerate(fits):
        expected = {c: xs[mask & (cities == c)].mean() for c in np.unique(cities)}
        np.testing.assert_allclose(result.values[:, i], [expected[c] for c in cities])


def test_expression_result_and_booleans(sandbox: Sandbox, table: pa.Table) -> None:
    code = "import polars as pl\nimport math\n\ndef feature(df, ref):\n    return pl.col('y') > math.sqrt(0.25)\n"
    result = sandbox.run(code, table)
    assert result.ok, result.reason
    assert result.values is not None
    np.testing.assert_array_equal(result.values[:, 0], (np.asarray(table["y"]) > 0.5).astype(float))


def test_batch_mixes_good_and_bad_code(sandbox: Sandbox, table: pa.Table) -> None:
    bad = "import os\ndef feature(df, ref):\n    return df['x']\n"
    raises = "def feature(df, ref):\n    return 1 / 0\n"
    results = sandbox.run_batch([FREQ, bad, raises, FREQ], table)
    assert [r.violation for r in results] == [None, "policy", "error", None]
    assert results[0].values is not None and results[3].values is not None
    np.testing.assert_array_equal(results[0].values, results[3].values)


def test_shared_process_gives_the_same_values(sandbox: Sandbox, table: pa.Table) -> None:
    rng = np.random.default_rng(2)
    fits = [rng.random(table.num_rows) < p for p in (0.3, 0.7)]
    codes = [FREQ, *(f"import polars as pl\n\ndef feature(df, ref):\n    return pl.col('x') * {k}\n" for k in range(5))]
    alone = sandbox.run_batch(codes, table, fits)
    shared = sandbox.run_batch(codes, table, fits, shared_process=True)
    for a, b in zip(alone, shared, strict=True):
        assert a.ok and b.ok and a.values is not None and b.values is not None
        np.testing.assert_array_equal(a.values, b.values)


def test_shared_process_pins_each_failure_on_its_code(table: pa.Table) -> None:
    loop = "def feature(df, ref):\n    while True:\n        pass\n"
    hog = "import numpy as np\n\ndef feature(df, ref):\n    x = np.ones(10**10 // 8 * 10)\n    return df['x']\n"
    raises = "def feature(df, ref):\n    return 1 / 0\n"
    codes = [FREQ, raises, loop, FREQ, hog, FREQ, FREQ, FREQ]
    with Sandbox(SandboxLimits(cpu_seconds=30, wall_seconds=1.5, memory_bytes=2**30)) as box:
        box.start()
        started = time.monotonic()
        results = box.run_batch(codes, table, shared_process=True)
        elapsed = time.monotonic() - started
    assert [r.violation for r in results] == [None, "error", "timeout", None, "memory", None, None, None]
    assert "timed out after 1.5 s wall clock" in (results[2].reason or "")
    # the loop costs its own wall limit twice (shared, then alone), not once per code of the batch
    assert elapsed < 2 * 1.5 + 3, elapsed


# --- static policy (nothing runs) -----------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        (
            "import socket\ndef feature(df, ref):\n    socket.create_connection(('1.1.1.1', 80))",
            "forbidden import 'socket'",
        ),
        ("import os\ndef feature(df, ref):\n    os.system('id')", "forbidden import 'os' (line 1)"),
        ("import subprocess\ndef feature(df, ref):\n    subprocess.run(['id'])", "forbidden import 'subprocess'"),
        ("def feature(df, ref):\n    __import__('os').system('id')", "forbidden name '__import__'"),
        ("def feature(df, ref):\n    ().__class__.__bases__[0].__subclasses__()", "forbidden attribute '.__class__'"),
        ("def feature(df, ref):\n    open('/etc/passwd', 'a').write('x')", "forbidden builtin 'open'"),
        ("import polars as pl\ndef feature(df, ref):\n    pl.os.fork()", "forbidden attribute '.os'"),
    ],
)
def test_policy_rejects_before_running(sandbox: Sandbox, table: pa.Table, code: str, fragment: str) -> None:
    assert_failed(sandbox.run(code, table), "policy", fragment)


# --- runtime layers, with the static check bypassed ----------------------------------------
def test_runtime_import_and_module_proxy(sandbox: Sandbox, table: pa.Table) -> None:
    imports = "import os\ndef feature(df, ref):\n    return df['x']\n"
    assert_failed(sandbox._execute([imports], table, None)[0], "policy", "import of 'os' is not allowed")
    reexport = "import polars as pl\ndef feature(df, ref):\n    pl.os.system('id')\n"
    assert_failed(sandbox._execute([reexport], table, None)[0], "policy", "module 'os' is not available")
    builtin = "def feature(df, ref):\n    return open('/etc/passwd')\n"
    assert_failed(sandbox._execute([builtin], table, None)[0], "error", "NameError", "'open'")


def test_runtime_socket_connect_fails(sandbox: Sandbox, table: pa.Table) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        body = f"real_import('socket').socket().connect(('127.0.0.1', {port}))"
        result = sandbox._execute([escape(body)], table, None)[0]
    assert_failed(result, "error", "PermissionError")


def test_runtime_write_etc_passwd_fails(sandbox: Sandbox, table: pa.Table) -> None:
    before = Path("/etc/passwd").read_bytes()
    body = "g['__builtins__']['open']('/etc/passwd', 'a').write('evil::0:0::/:/bin/sh')"
    result = sandbox._execute([escape(body)], table, None)[0]
    assert Path("/etc/passwd").read_bytes() == before
    if os.geteuid() == 0:  # as root the run process is chrooted into an empty directory
        assert_failed(result, "error", "FileNotFoundError", "/etc/passwd")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("os.fork()", "PermissionError"),
        ("real_import('subprocess').run(['/bin/touch', MARKER])", "PermissionError"),
        ("assert os.system('/bin/touch ' + MARKER) == 0, 'os.system failed'", "AssertionError: os.system failed"),
    ],
)
def test_runtime_process_creation_fails(
    sandbox: Sandbox, table: pa.Table, tmp_path: Path, body: str, fragment: str
) -> None:
    marker = tmp_path / "created"
    tmp_path.chmod(0o777)
    result = sandbox._execute([escape(body.replace("MARKER", repr(str(marker))))], table, None)[0]
    assert_failed(result, "error", fragment)
    assert not marker.exists()


def test_network_namespace_blocks_loopback_of_host() -> None:
    """Worker-level hook: a process that entered the sandbox netns cannot reach the host."""
    probe = (
        "import socket, sys\nfrom sandbox.confinement import enter_network_namespace\n"
        "problem = enter_network_namespace()\nif problem: print(problem); sys.exit(3)\n"
        "try:\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)\n"
        "except OSError as exc:\n    print(exc); sys.exit(0)\nsys.exit(1)\n"
    )
    with socket.create_server(("127.0.0.1", 0)) as server:
        argv = [sys.executable, "-c", probe, str(server.getsockname()[1])]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    if done.returncode == 3:
        pytest.skip(f"network namespaces not permitted here: {done.stdout.strip()}")
    assert done.returncode == 0, "connected to the host from inside the network namespace"


# --- limits -------------------------------------------------------------------------------
def test_busy_loop_hits_cpu_limit(table: pa.Table) -> None:
    # a wall limit far above the CPU limit: on a busy machine two CPU seconds can take many wall seconds
    with Sandbox(SandboxLimits(cpu_seconds=2, wall_seconds=120, memory_bytes=2**30)) as box:
        result = box.run("def feature(df, ref):\n    while True:\n        pass\n", table)
        assert_failed(result, "cpu", "CPU limit 2.0 s exceeded")


def test_busy_loop_hits_wall_clock(table: pa.Table) -> None:
    with Sandbox(SandboxLimits(cpu_seconds=30, wall_seconds=1.5, memory_bytes=2**30)) as box:
        started = time.monotonic()
        result = box.run("def feature(df, ref):\n    while True:\n        pass\n", table)
        assert_failed(result, "timeout", "timed out after 1.5 s wall clock")
        assert time.monotonic() - started < 1.5 + 3  # worker start-up is not counted in the deadline
        assert box.run(FREQ, table).ok


@pytest.mark.parametrize(
    "expr",
    ["np.ones(10**10 // 8 * 10)", "bytearray(10 * 2**30)", "pl.repeat(1.0, 2**31, eager=True).sum()"],
)
def test_huge_allocation_hits_memory_limit(sandbox: Sandbox, table: pa.Table, expr: str) -> None:
    code = f"import numpy as np\nimport polars as pl\n\ndef feature(df, ref):\n    x = {expr}\n    return df['x']\n"
    assert_failed(sandbox.run(code, table), "memory", "memory limit 1.0 GiB exceeded")


# --- errors and bad output -------------------------------------------------------------------
def test_raising_feature(sandbox: Sandbox, table: pa.Table) -> None:
    code = "def feature(df, ref):\n    x = 1\n    raise ValueError('no good')\n"
    assert_failed(sandbox.run(code, table), "error", "feature raised ValueError: no good (line 3)")


def test_polars_error_is_one_line(sandbox: Sandbox, table: pa.Table) -> None:
    result = sandbox.run("def feature(df, ref):\n    return df['missing']\n", table)
    assert_failed(result, "error", "ColumnNotFoundError", "(line 2)")
    assert "\n" not in (result.reason or "")


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("def feature(df, ref):\n    return df['x'].head(3)\n", "returned 3 values; expected 1000"),
        ("def feature(df, ref):\n    return 42\n", "returned int; expected a polars Series or Expr"),
        ("def feature(df, ref):\n    return df['city']\n", "dtype String"),
    ],
)
def test_wrong_output(sandbox: Sandbox, table: pa.Table, code: str, fragment: str) -> None:
    assert_failed(sandbox.run(code, table), "output", fragment)


# --- worker replacement ----------------------------------------------------------------------
def test_killed_worker_is_replaced(table: pa.Table) -> None:
    with Sandbox(LIMITS) as box:
        box.start()
        pid = box.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while box.worker_pid is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert box.run(FREQ, table).ok
        assert box.worker_pid not in (None, pid)


def test_hung_worker_is_killed_by_the_parent(table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_runner, "_BACKSTOP_GRACE_S", 0.5)
    with Sandbox(SandboxLimits(cpu_seconds=1, wall_seconds=1, memory_bytes=2**30)) as box:
        assert box.run(FREQ, table).ok
        pid = box.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        assert_failed(box.run(FREQ, table), "timeout", "worker unresponsive")
        result = box.run(FREQ, table)
        assert result.ok, result.reason
        assert box.worker_pid != pid


# --- replies without results ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "payload", "fragment"),
    [
        ({"op": "stored"}, b"", "without results"),
        ({"op": "missing", "keys": ["not-a-key"]}, b"", "unknown data"),
        ({"op": "results", "results": []}, b"", "answered 0 of 2"),
        ({"op": "results", "results": [{"ok": True}, {"ok": True}]}, b"\x00" * 7, "bytes of values"),
        ({"op": "results", "results": ["x", "y"]}, b"", "not an object"),
        ({"nonsense": 1}, b"", "without results"),
    ],
    ids=["stored", "missing-unknown", "too-few", "short-payload", "not-objects", "nonsense"],
)
def test_a_reply_without_results_fails_the_codes_and_the_next_run_works(
    table: pa.Table, monkeypatch: pytest.MonkeyPatch, reply: dict, payload: bytes, fragment: str
) -> None:
    with Sandbox(LIMITS) as box:
        box.start()
        pid = box.worker_pid
        real = Sandbox._request
        monkeypatch.setattr(Sandbox, "_request", lambda self, worker, request, n: (reply, payload))
        results = box.run_batch([FREQ, FREQ], table)
        assert len(results) == 2
        for result in results:
            assert_failed(result, "crash", fragment, "it has been replaced")
        monkeypatch.setattr(Sandbox, "_request", real)
        assert box.run(FREQ, table).ok
        assert box.worker_pid != pid


def test_worker_killed_mid_run_then_the_next_run_works(table: pa.Table) -> None:
    """The worker dies (kill -9) while it runs a batch: the batch fails, the next one runs."""
    import threading

    slow = "def feature(df, ref):\n    while True:\n        pass\n"
    with Sandbox(LIMITS) as box:
        box.start()
        pid = box.worker_pid
        assert pid is not None
        outcome: list[list[SandboxResult]] = []
        runner = threading.Thread(target=lambda: outcome.append(box.run_batch([slow, FREQ], table)))
        runner.start()
        time.sleep(0.5)  # the request is out; the run process is busy
        os.kill(pid, signal.SIGKILL)
        runner.join(timeout=60)
        assert not runner.is_alive()
        assert [r.violation for r in outcome[0]] == ["crash", "crash"], outcome
        assert "it has been replaced" in (outcome[0][0].reason or "")
        again = box.run_batch([FREQ, FREQ], table)
        assert all(r.ok for r in again), again
        assert box.worker_pid not in (None, pid)


# --- the empty root ----------------------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root; without it the worker reports a degradation")
def test_run_process_sees_an_empty_root(sandbox: Sandbox, table: pa.Table) -> None:
    body = "raise ValueError(repr((os.listdir('/'), os.path.exists('/etc/passwd'))))"
    assert_failed(sandbox._execute([escape(body)], table, None)[0], "error", "([], False)")


def test_without_root_no_empty_root_is_reported_as_a_degradation() -> None:
    from sandbox.confinement import enter_empty_root

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            os.write(w, (enter_empty_root() or "entered").encode())
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert answer.startswith("not root: no empty root"), answer


def test_every_generated_op_computes_the_same_in_the_confined_process(sandbox: Sandbox) -> None:
    """Whatever Polars loads lazily for AFEP's own ops is there in the empty root, as nobody."""
    from processors.codegen import generate_code
    from tests.unit.test_codegen import CASES, DF, HOSTILE_NAMES, _hostile_cases

    codes = [generate_code(spec).code for spec, _ in CASES]
    results = sandbox.run_batch(codes, DF.to_arrow(), shared_process=True)
    for (spec, _), code, result in zip(CASES, codes, results, strict=True):
        assert result.ok, (spec.op, result.reason)
        namespace: dict = {}
        exec(code, namespace)
        want = namespace["feature"](DF, DF).to_numpy()
        assert np.allclose(result.values[:, 0], want, equal_nan=True), spec.op  # type: ignore[index]
    for spec, frame, want in _hostile_cases(HOSTILE_NAMES[2]):  # a docstring breakout as a column name
        result = sandbox.run(generate_code(spec).code, frame.to_arrow(), [np.array([True] * 3 + [False] * 2)])
        assert result.ok, (spec.op, result.reason)
        got = [None if np.isnan(v) else v for v in result.values[:, 0]]  # type: ignore[index]
        assert got == pytest.approx(want), spec.op
