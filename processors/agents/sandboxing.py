"""Run feature codes in the sandbox for some fit masks: shared by execution and evaluation.

AFEP's own generated code (the same sha256 as what codegen writes for the spec, and
passing the sandbox policy: `codegen.is_generated`) runs a chunk per confined process;
any other code gets a process per code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np

from domain.feature import Feature
from processors.codegen import is_generated

CHUNK = 20  # codes per sandbox batch


def run_codes(
    sandbox: Any,
    features: Sequence[Feature],
    data: Any,
    fits: Sequence[np.ndarray] | None,
    on_chunk: Callable[[list[tuple[Feature, Any]]], None],
    *,
    driver: Executor,
) -> None:
    """Run each feature's code over `data` (Arrow) for `fits`; `on_chunk` gets (feature, result) pairs.

    Pipelined: `driver` (one long-lived thread, `Workbench.sandbox_driver`) has the sandbox
    compute the next chunk while `on_chunk` records this one (artifacts, events), so
    neither waits for the other. `on_chunk` is called in order, on the caller's thread.
    """
    own = {f.feature_id for f in features if f.code and is_generated(f.proposal.spec_json, f.code.code)}
    masks = None if fits is None else list(fits)
    chunks = [
        (group[start : start + CHUNK], shared)
        for shared in (True, False)
        for group in [[f for f in features if (f.feature_id in own) == shared]]
        for start in range(0, len(group), CHUNK)
    ]

    def run(chunk: list[Feature], shared: bool) -> list[Any]:
        codes = [f.code.code for f in chunk if f.code is not None]
        results: list[Any] = sandbox.run_batch(codes, data, masks, shared_process=shared)
        return results

    previous: tuple[list[Feature], Future[list[Any]]] | None = None
    for chunk, shared in chunks:
        current = (chunk, driver.submit(run, chunk, shared))
        if previous is not None:
            on_chunk(list(zip(previous[0], previous[1].result(), strict=True)))
        previous = current
    if previous is not None:
        on_chunk(list(zip(previous[0], previous[1].result(), strict=True)))
