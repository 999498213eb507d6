"""The local runtime: every agent in one process, each following the log from its own position.

An agent is a module with `NAME`, `SUBSCRIBES` (event types) and a policy
`react(envelope, store, bench) -> list[Command]`. The loop reads the events an
agent subscribes to after its tracked position, reacts, and appends the
resulting events together with the new position in one transaction, so a
restart resumes with exactly-once effects. Agents may commit idempotent interim
results through `bench.emit` (progress, per-chunk results); a rerun after a
crash skips what was already recorded.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from commands.store import EventStore, Tracking
from commands.unit_of_work import Trace, execute
from domain.envelope import Context, Envelope
from domain.errors import DomainError
from domain.job import FailJob
from domain.validation import printable
from processors.agents import AGENTS
from processors.workbench import Workbench

log = logging.getLogger(__name__)
Observer = Callable[[Sequence[Envelope]], None]
# What a reaction's commands can meet that retrying would only meet again: the domain refusing
# them, or a command that cannot be encoded. Anything else (the store is down) is retried.
REFUSALS = (DomainError, TypeError, ValueError)
MAX_REASON = 4000


class LocalRuntime:
    def __init__(
        self,
        store: EventStore,
        bench: Workbench,
        *,
        agents: Sequence[ModuleType] = AGENTS,
        observers: Sequence[Observer] = (),
        page_size: int = 100,
    ) -> None:
        self.store = store
        self.bench = bench
        self.agents = tuple(agents)
        self.observers = list(observers)
        self.page_size = page_size
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- one pass

    def step(self) -> int:
        """Give every agent the events it has not seen yet; returns how many it handled."""
        handled = 0
        for agent in self.agents:
            position = self.store.tracking_position(agent.NAME)
            types = [t.__name__ for t in agent.SUBSCRIBES]
            for envelope in self.store.read_all(after=position, limit=self.page_size, types=types):
                self._react(agent, envelope)
                handled += 1
        return handled

    def run_until_idle(self, *, until: Callable[[], bool] | None = None) -> None:
        while not self._stop.is_set():
            if self.step() == 0 or (until is not None and until()):
                return

    def _react(self, agent: ModuleType, envelope: Envelope) -> None:
        def context() -> Context:  # read the clock at each commit: occurred_at is when it was recorded
            return Context(
                at=self.bench.clock(),
                actor=f"agent:{agent.NAME}",
                tenant_id=envelope.tenant_id,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.event_id,
            )

        def emit(commands: Sequence[Any]) -> None:
            if commands:
                ctx = context()
                self._publish(execute(self.store, [(c, ctx) for c in commands]))

        self.bench.emit = emit
        try:
            commands = list(agent.react(envelope, self.store, self.bench))
        except Exception as error:  # an agent bug fails the job, never the runtime
            log.exception("agent %s failed on %s", agent.NAME, envelope.event_type)
            reason = f"{agent.NAME} agent crashed on {envelope.event_type}: {type(error).__name__}: {error}"
            commands = self._failure(agent, envelope, reason)
        finally:
            self.bench.emit = lambda commands: None
        tracking = Tracking(agent.NAME, envelope.position)
        ctx = context()
        try:
            recorded = execute(self.store, [(c, ctx) for c in commands], tracking=tracking)
        except REFUSALS as error:  # a refused reaction fails its job; the agent moves on to the next event
            log.warning("agent %s: the domain refused its reaction to %s: %s", agent.NAME, envelope.event_type, error)
            reason = f"{agent.NAME} agent's reaction to {envelope.event_type} was refused: {error}"
            recorded = self._record_failure(agent, envelope, reason, tracking, ctx)
        self._publish(recorded)

    def _failure(self, agent: ModuleType, envelope: Envelope, reason: str) -> list[Any]:
        """The commands that fail the envelope's job with `reason` (cleaned: a failure is always recordable)."""
        job_id = envelope.correlation_id
        reason = printable(reason, MAX_REASON)
        return [
            Trace(job_id, agent.NAME, "decision", reason, {"traceback": printable(traceback.format_exc(limit=8))}),
            FailJob(job_id, reason, agent.NAME),
        ]

    def _record_failure(
        self, agent: ModuleType, envelope: Envelope, reason: str, tracking: Tracking, ctx: Context
    ) -> Sequence[Envelope]:
        """Fail the job with `reason`; when even that is refused (no such job), only move the position on."""
        try:
            return execute(self.store, [(c, ctx) for c in self._failure(agent, envelope, reason)], tracking=tracking)
        except REFUSALS as error:
            log.warning(
                "agent %s: could not fail job %s (%s); skipping the event", agent.NAME, envelope.correlation_id, error
            )
            return execute(self.store, [], tracking=tracking)

    def _publish(self, recorded: Sequence[Envelope]) -> None:
        if recorded:
            for observer in self.observers:
                observer(recorded)

    # ------------------------------------------------------- background

    def start(self, poll_seconds: float = 0.2) -> None:
        """Run in a background thread (for `afep serve`); `wake()` after appending a command."""

        def loop() -> None:
            self.bench.warm_up()  # from this thread: the sandbox worker lives as long as its creator
            while not self._stop.is_set():
                try:
                    self.run_until_idle()
                except Exception:
                    log.exception("runtime pass failed; retrying")
                self._wake.wait(poll_seconds)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="afep-runtime", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.bench.close()
