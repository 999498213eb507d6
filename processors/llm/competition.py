"""Competing code generation: several implementations of one feature, one winner, every loser's reason.

The offline generator's module and one module per coding model are each checked by the
sandbox's AST policy and run in the confined sandbox (a process per code: model-written
code never gets the shared fast path) on a sample of the job's rows. The winner agrees
with the most other implementations; among equals, the fastest. When no two agree, the
offline generator's module (derived from the typed spec) is the reference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from domain.spec import FeatureSpec
from processors.codegen import GeneratedCode
from processors.llm.ideas import definition
from processors.llm.port import BudgetExhausted, LLMUnavailable
from processors.llm.session import LLMSession, tool_request, tool_schema
from sandbox.policy import check_code

OFFLINE = "offline"
SAMPLE_ROWS = 2000


class SubmittedCode(BaseModel):
    code: str = Field(max_length=50_000, description="the complete Python module defining feature(df, ref)")


SUBMIT_TOOL = tool_schema("submit_code", "The complete module.", SubmittedCode)


@dataclass
class Entry:
    label: str  # "offline" or the model's name
    code: str | None
    reason: str | None = None  # why it could not run (no code, policy)
    ok: bool = False
    values: np.ndarray | None = None
    ms: float = 0.0
    agrees_with: list[str] = field(default_factory=list)

    @property
    def code_hash(self) -> str | None:
        return None if self.code is None else hashlib.sha256(self.code.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Outcome:
    winner: Entry
    losers: tuple[tuple[Entry, str], ...]

    def summary(self) -> dict[str, Any]:
        entries = [(self.winner, "winner"), *self.losers]
        return {
            "winner": self.winner.label,
            "entries": [
                {
                    "implementation": e.label,
                    "ok": e.ok,
                    "ms": round(e.ms, 2),
                    "agrees_with": e.agrees_with,
                    "code_hash": e.code_hash,
                    "result": why,
                }
                for e, why in entries
            ],
        }


def write_codes(
    session: LLMSession, name: str, description: str, spec: FeatureSpec, types: dict[str, str], feature_id: str
) -> list[Entry]:
    """One entry per coding model, written in parallel (a failure is an entry with its reason)."""
    models = session.services.models.coders
    request = tool_request(
        "codegen",
        tools=(SUBMIT_TOOL,),
        force="submit_code",
        max_tokens=4096,
        name=name,
        description=description,
        definition=definition(spec),
        columns=", ".join(f"`{c}` ({types.get(c, '?')})" for c in spec.columns),
        user=f"Write the module for {name}.",
    )

    def one(model: str) -> Entry:
        try:
            code = session.structured(request, "submit_code", SubmittedCode, model=model, feature_ids=(feature_id,))
        except (LLMUnavailable, BudgetExhausted) as error:
            return Entry(model, None, reason=f"no code: {error}")
        return Entry(model, code.code)

    with ThreadPoolExecutor(max_workers=max(1, len(models)), thread_name_prefix="codegen-llm") as pool:
        return list(pool.map(one, models))


def compete(
    entries: Sequence[Entry],
    offline: GeneratedCode,
    sample: Any,
    run: Callable[[list[str], Any], list[Any]],
) -> Outcome:
    """Run every implementation on `sample` (Arrow) through `run` (the sandbox) and pick the winner."""
    everyone = [Entry(OFFLINE, offline.code), *entries]
    runnable: list[Entry] = []
    for entry in everyone:
        if entry.code is None:
            continue
        violations = check_code(entry.code)
        if violations:
            entry.reason = f"refused by the AST policy: {violations[0]}"
            continue
        runnable.append(entry)
    results = run([e.code for e in runnable if e.code is not None], sample) if runnable else []
    for entry, result in zip(runnable, results, strict=True):
        entry.ms = float(result.duration_s) * 1000
        if not result.ok or result.values is None:
            entry.reason = f"failed in the sandbox: {result.reason or result.violation or 'no output'}"
            continue
        entry.ok = True
        entry.values = np.asarray(result.values, dtype=np.float64)[:, 0]
    ok = [e for e in runnable if e.ok]
    for a in ok:
        a.agrees_with = [b.label for b in ok if b is not a and _same(a.values, b.values)]
    if not ok:
        return Outcome(everyone[0], tuple((e, e.reason or "did not run") for e in everyone[1:]))
    best = max(len(e.agrees_with) for e in ok)
    if best == 0:
        reference = everyone[0] if everyone[0].ok else min(ok, key=lambda e: e.ms)
        winner = reference
        why_lost = "no two implementations agree; the spec's own generator is the reference"
    else:
        winner = min((e for e in ok if len(e.agrees_with) == best), key=lambda e: e.ms)
        why_lost = ""
    losers = []
    for entry in everyone:
        if entry is winner:
            continue
        if not entry.ok:
            losers.append((entry, entry.reason or "did not run"))
        elif why_lost:
            losers.append((entry, f"{why_lost} ({_difference(entry.values, winner.values)})"))
        elif len(entry.agrees_with) < best:
            losers.append(
                (
                    entry,
                    f"output disagrees with {winner.label} ({_difference(entry.values, winner.values)}); "
                    f"agrees with {len(entry.agrees_with)} implementation(s), the winner with {best}",
                )
            )
        else:
            losers.append((entry, f"same output, slower: {entry.ms:.1f} ms against {winner.ms:.1f} ms"))
    return Outcome(winner, tuple(losers))


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None or a.shape != b.shape:
        return False
    na, nb = ~np.isfinite(a), ~np.isfinite(b)
    if not np.array_equal(na, nb):
        return False
    return bool(np.allclose(a[~na], b[~nb], rtol=1e-6, atol=1e-9))


def _difference(a: np.ndarray | None, b: np.ndarray | None) -> str:
    if a is None or b is None or a.shape != b.shape:
        return "different shapes"
    finite = np.isfinite(a) & np.isfinite(b)
    missing = int((np.isfinite(a) != np.isfinite(b)).sum())
    differ = int((~np.isclose(a[finite], b[finite], rtol=1e-6, atol=1e-9)).sum())
    largest = float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else 0.0
    return f"{differ + missing} of {a.size} rows differ, largest difference {largest:.4g}"
