"""What agents work with: the job's frozen dataset, artifacts, the sandbox, a clock.

Created once per runtime and handed to every reaction; heavy things (the
sandbox's warm worker, the knowledge base) start on first use, or in the
background from `warm_up()` so that a job does not wait for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from processors.featurestore.config import FeatureStoreConfig
from processors.sources import SourcePolicy

Emit = Callable[[Sequence[Any]], None]
log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


BACKGROUND_JOIN_SECONDS = 10.0  # background work returns after its current fit once stopped


@dataclass
class Workbench:
    datasets_dir: Path
    artifacts_dir: Path
    clock: Callable[[], datetime] = utc_now
    sandbox_options: dict[str, float] = field(default_factory=dict)
    emit: Emit = lambda commands: None  # set by the runtime: commit interim results now
    # (source, tenant) -> something `load_table` reads; the API wires in its stored connections
    # and its source policy (gateway/runtime_wiring.py), which this carries for the agents
    resolve_source: Callable[[str, str], str] = lambda source, tenant: source
    source_policy: SourcePolicy = field(default_factory=SourcePolicy.local)
    # the LLM and web-search providers (`processors.llm.LLMServices`) when keys are set; None: offline agents
    llm: Any = None
    knowledge_dir: Path | None = None  # what accepted research taught (`processors/llm/learning.py`)
    # the experiment tracker (MLflow) the tracking agent logs completed jobs to; None: no tracking.
    # Artifacts go under tracking_artifacts unless the URI is a tracking server.
    tracking_uri: str | None = None
    tracking_artifacts: Path | None = None
    # where and how the feature-store agent keeps its Feast repositories; None: the embedded
    # defaults under the data dir (the parent of datasets_dir)
    feature_store: FeatureStoreConfig | None = None
    _frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    _sandbox: Any = None
    _kb: Any = None
    _memo: dict[Any, Any] = field(default_factory=dict)
    _background: dict[Any, tuple[threading.Thread, threading.Event]] = field(default_factory=dict)
    _sandbox_driver: ThreadPoolExecutor | None = None

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """Keep one derived object per key (e.g. a job's encoded matrix and fold plan)."""
        if key not in self._memo:
            if len(self._memo) > 8:
                self._memo.clear()
            self._memo[key] = build()
        return self._memo[key]

    def in_background(self, key: Any, work: Callable[[threading.Event], None]) -> None:
        """Run `work(stop)` on a daemon thread; `wait_for(key)` sets `stop` and joins it.

        Background work only prepares what a later reaction would otherwise compute
        itself, so it must return soon once `stop` is set, and a failure is just logged.
        """
        stop = threading.Event()

        def run() -> None:
            try:
                work(stop)
            except Exception:
                if stop.is_set():  # stopped mid-call (the runtime is shutting down): nothing is lost
                    log.debug("background work %r stopped", key, exc_info=True)
                    return
                log.warning("background work %r failed; it will be redone where it is needed", key, exc_info=True)

        self.wait_for(key)
        thread = threading.Thread(target=run, name=f"background-{key}", daemon=True)
        self._background[key] = (thread, stop)
        thread.start()

    def wait_for(self, key: Any) -> None:
        """Ask the background work under `key` to stop, and wait until it has."""
        running = self._background.pop(key, None)
        if running is not None:
            thread, stop = running
            stop.set()
            thread.join()

    def frame(self, path: str) -> pl.DataFrame:
        if path not in self._frames:
            if len(self._frames) > 4:
                self._frames.clear()
            self._frames[path] = pl.read_parquet(path)
        return self._frames[path]

    def sandbox(self) -> Any:
        if self._sandbox is None:
            from sandbox import Sandbox, SandboxLimits

            self._sandbox = Sandbox(SandboxLimits(**self.sandbox_options))  # type: ignore[arg-type]
        return self._sandbox

    def sandbox_driver(self) -> ThreadPoolExecutor:
        """One long-lived thread that drives the sandbox while an agent records results.

        Long-lived because a sandbox worker (re)started from a thread dies with that
        thread (PR_SET_PDEATHSIG), and one thread because chunks must run in order.
        """
        if self._sandbox_driver is None:
            self._sandbox_driver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-driver")
        return self._sandbox_driver

    def warm_up(self) -> None:
        """Start the LightGBM fit workers and the sandbox worker now, without waiting for them.

        Both import their libraries in their own processes (about 0.5 s each) while the
        job's first stages run; a job started cold pays that time at its first fit.
        Call it from the thread that runs the agents (see `Sandbox.spawn`).
        """
        from processors.engine.pool import shared_pool

        shared_pool().start()
        try:
            self.sandbox().spawn()
        except OSError:  # the first real run retries and reports the problem
            log.warning("sandbox warm-up failed", exc_info=True)

    def knowledge_base(self) -> Any:
        if self._kb is None:
            from processors.knowledge import load_knowledge_base

            self._kb = load_knowledge_base()
            if self.knowledge_dir is not None and self.knowledge_dir.is_dir():
                from processors.knowledge import KnowledgeBase
                from processors.llm.learning import learned_domains

                self._kb = KnowledgeBase(self._kb.domains + learned_domains(self.knowledge_dir))
        return self._kb

    def forget_knowledge(self) -> None:
        """The knowledge base changed on disk: load it again when next asked."""
        self._kb = None

    def artifact_path(self, job_id: str, feature_id: str) -> Path:
        return self.artifacts_dir / job_id / f"{feature_id}.npy"

    def save_artifact(self, job_id: str, feature_id: str, values: np.ndarray) -> str:
        path = self.artifact_path(job_id, feature_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, values.astype(np.float64, copy=False))
        tmp.replace(path)
        return str(path)

    @staticmethod
    def load_artifact(path: str, n_fits: int) -> np.ndarray:
        """A candidate's (n_rows, n_fits) values; stateless ones are stored once and broadcast."""
        values = np.load(path)
        if values.ndim == 1:
            values = values[:, None]
        if values.shape[1] == 1 and n_fits > 1:
            values = np.broadcast_to(values, (values.shape[0], n_fits))
        return values  # type: ignore[no-any-return]

    def close(self) -> None:
        running = list(self._background.items())  # a snapshot: an agent thread may still be adding
        for _, (_, stop) in running:  # before the workers it uses go away
            stop.set()
        for key, (thread, _) in running:
            thread.join(timeout=BACKGROUND_JOIN_SECONDS)
            self._background.pop(key, None)
        if self._sandbox is not None:  # first: a batch in flight then ends now, not after its codes' limits
            self._sandbox.close()
            self._sandbox = None
        if self._sandbox_driver is not None:
            self._sandbox_driver.shutdown(wait=True, cancel_futures=True)
            self._sandbox_driver = None
