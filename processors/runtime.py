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
from collections.abc import Callable, Sequence
from types import ModuleType

from commands.store import EventStore, Tracking
from domain.envelope import Envelope
from processors.agents import AGENTS
from processors.reaction import react
from processors.workbench import Workbench

log = logging.getLogger(__name__)
Observer = Callable[[Sequence[Envelope]], None]


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
        recorded = react(
            self.store, self.bench, agent, envelope, Tracking(agent.NAME, envelope.position), self._publish
        )
        self._publish(recorded)

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
