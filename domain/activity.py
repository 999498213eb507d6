"""Activity: what agents think and do, and how far they got.

Activity streams (`trace-<job>-<agent>`) have one writer each and no invariants
beyond ordering, so there is no decider: the writer appends at its own version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TraceKind = Literal["thought", "tool_call", "tool_result", "decision"]
TRACE_KINDS: tuple[str, ...] = ("thought", "tool_call", "tool_result", "decision")


def activity_stream(job_id: str, agent: str) -> str:
    return f"trace-{job_id}-{agent}"


@dataclass(frozen=True)
class AgentTraced:
    job_id: str
    agent: str
    kind: str  # one of TRACE_KINDS
    message: str
    data_json: str = "{}"


@dataclass(frozen=True)
class ProgressReported:
    job_id: str
    agent: str
    stage: str
    done: int
    total: int
    message: str = ""
