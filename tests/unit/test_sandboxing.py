"""run_codes: chunks reach the recorder in order, each with its own results, while the next one runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from processors.agents import sandboxing


class FakeSandbox:
    """Answers each code with its own text; the second batch tells the test that it started."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.second_started = threading.Event()

    def run_batch(self, codes: list[str], data: Any, fits: Any, *, shared_process: bool) -> list[str]:
        self.batches.append(list(codes))
        if len(self.batches) == 2:
            self.second_started.set()
        return [f"result of {c}" for c in codes]


def _features(n: int) -> list[Any]:
    return [
        SimpleNamespace(
            feature_id=f"f{i}", code=SimpleNamespace(code=f"code {i}"), proposal=SimpleNamespace(spec_json="{}")
        )
        for i in range(n)
    ]


@pytest.fixture
def driver() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def test_chunks_are_recorded_in_order_while_the_sandbox_runs_the_next(
    monkeypatch: pytest.MonkeyPatch, driver: ThreadPoolExecutor
) -> None:
    monkeypatch.setattr(sandboxing, "CHUNK", 3)
    sandbox, seen = FakeSandbox(), []

    def record(chunk: list[tuple[Any, str]]) -> None:
        if not seen:  # the first chunk's recording overlaps the second chunk's run
            assert sandbox.second_started.wait(timeout=10)
        seen.extend((f.feature_id, result) for f, result in chunk)

    sandboxing.run_codes(sandbox, _features(8), data=None, fits=None, on_chunk=record, driver=driver)
    assert [len(b) for b in sandbox.batches] == [3, 3, 2]
    assert seen == [(f"f{i}", f"result of code {i}") for i in range(8)]


def test_an_error_in_the_sandbox_reaches_the_caller(driver: ThreadPoolExecutor) -> None:
    class Broken(FakeSandbox):
        def run_batch(self, codes: list[str], data: Any, fits: Any, *, shared_process: bool) -> list[str]:
            raise RuntimeError("sandbox gone")

    with pytest.raises(RuntimeError, match="sandbox gone"):
        sandboxing.run_codes(Broken(), _features(2), data=None, fits=None, on_chunk=lambda chunk: None, driver=driver)


class Recording(FakeSandbox):
    def __init__(self) -> None:
        super().__init__()
        self.shared: list[bool] = []

    def run_batch(self, codes: list[str], data: Any, fits: Any, *, shared_process: bool) -> list[str]:
        self.shared.append(shared_process)
        return super().run_batch(codes, data, fits, shared_process=shared_process)


def _feature(fid: str, spec: Any, code: str) -> Any:
    import json

    return SimpleNamespace(
        feature_id=fid, code=SimpleNamespace(code=code), proposal=SimpleNamespace(spec_json=json.dumps(spec.to_dict()))
    )


def test_only_generated_code_that_passes_the_policy_shares_a_process(
    monkeypatch: pytest.MonkeyPatch, driver: ThreadPoolExecutor
) -> None:
    from domain.spec import FeatureSpec
    from processors import codegen

    own = FeatureSpec("ratio", ('a"""\nimport os\n"""', "b"))
    code = codegen.generate_code(own).code
    edited = code.replace("return finite", "x = 1\n    return finite")
    features = [_feature("own", own, code), _feature("edited", own, edited)]
    sandbox = Recording()
    sandboxing.run_codes(sandbox, features, data=None, fits=None, on_chunk=lambda chunk: None, driver=driver)
    assert list(zip(sandbox.batches, sandbox.shared, strict=True)) == [([code], True), ([edited], False)]
    # a policy that refuses the generator's output makes it "not generated": a process of its own
    monkeypatch.setattr(codegen, "check_code", lambda text: ["forbidden"])
    sandbox = Recording()
    sandboxing.run_codes(sandbox, features[:1], data=None, fits=None, on_chunk=lambda chunk: None, driver=driver)
    assert sandbox.shared == [False]
