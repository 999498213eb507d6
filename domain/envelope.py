"""The envelope: metadata around an event, kept out of the business fields.

Lineage and audit follow `causation_id` chains; `correlation_id` is the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The actor of what a person does at the command line: `user:<login>`. API callers act as
# `key:<key id>` or their token's subject, agents as `agent:<name>`.
LOCAL_USER = "user:"


@dataclass(frozen=True)
class Context:
    """Who asks, on whose behalf, when, and because of what: comes in with a command."""

    at: datetime
    actor: str = "system"
    tenant_id: str = "default"
    correlation_id: str = ""
    causation_id: str | None = None


@dataclass(frozen=True)
class Envelope:
    """An event as recorded in the log."""

    event: Any
    stream_id: str
    version: int
    event_id: str
    occurred_at: datetime
    correlation_id: str
    causation_id: str | None
    actor: str
    tenant_id: str
    position: int = 0  # global log position; 0 until recorded

    @property
    def event_type(self) -> str:
        return type(self.event).__name__
