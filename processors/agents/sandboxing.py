"""Run feature codes in the sandbox for some fit masks: shared by execution and evaluation.

AFEP's own generated code (byte-identical to what codegen writes for the spec) runs a
chunk per confined process; any other code gets a process per code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
) -> None:
    """Run each feature's code over `data` (Arrow) for `fits`; `on_chunk` gets (feature, result) pairs."""
    own = {f.feature_id for f in features if f.code and is_generated(f.proposal.spec_json, f.code.code)}
    for shared in (True, False):
        group = [f for f in features if (f.feature_id in own) == shared]
        for start in range(0, len(group), CHUNK):
            chunk = group[start : start + CHUNK]
            codes = [f.code.code for f in chunk if f.code is not None]
            results = sandbox.run_batch(codes, data, None if fits is None else list(fits), shared_process=shared)
            on_chunk(list(zip(chunk, results, strict=True)))
