"""The agents as faust agents: one per processor, consuming the topics its policy reacts to.

A worker process runs a faust app whose consumer group is named after its agent set,
so workers with the same `--agents` share the partitions (they scale by partition) and
workers with different sets each see every event. Every reaction runs on one thread of
the worker (the workbench and its sandbox belong to that thread), through `Reactor`,
which drops redelivered events by tracking position. Offsets are committed after the
reaction: delivery is at-least-once, effects exactly-once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from processors.kafka.broker import KafkaConfig
from processors.kafka.reaction import Reactor
from schemas.wire import NotAnAfepRecord, from_record, topic_for

log = logging.getLogger(__name__)
T = TypeVar("T")


def group_id(agents: Sequence[ModuleType], prefix: str) -> str:
    return f"{prefix}-agents-{'-'.join(sorted(a.NAME for a in agents))}"


def faust_app(
    app_id: str, config: KafkaConfig, *, instance_id: str, data_dir: Path, heartbeat: Callable[[], None] | None = None
) -> Any:
    """A faust app for Tansu: static membership, topics created by the relay, no web server, no tables."""
    import faust

    (data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=f"kafka://{config.bootstrap}",
        consumer_group_instance_id=instance_id,  # Tansu needs static membership (error 79 otherwise)
        consumer_auto_offset_reset="earliest",
        topic_partitions=config.partitions,
        topic_allow_declare=False,  # the relay creates the topics with fixed partitions
        topic_disable_leader=True,
        web_enabled=False,
        store="memory://",
        datadir=str(data_dir / "faust" / instance_id),
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_max_poll_interval=3600.0,  # an evaluation may take minutes; the reaction runs off the loop
        stream_wait_empty=False,
    )
    if heartbeat is not None:

        async def beat() -> None:
            heartbeat()

        app.timer(5.0, name=f"{app_id}.heartbeat")(beat)
    return app


def build_worker_app(
    reactor: Reactor,
    config: KafkaConfig,
    agents: Sequence[ModuleType],
    *,
    instance_id: str,
    data_dir: Path,
    warm_up: Callable[[], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> Any:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="afep-reactions")
    if warm_up is not None:
        executor.submit(warm_up)  # on the reaction thread: the sandbox worker lives as long as its creator
    app = faust_app(
        group_id(agents, config.prefix),
        config,
        instance_id=instance_id,
        data_dir=data_dir,
        heartbeat=heartbeat,
    )
    for agent in agents:
        _add_agent(app, reactor, executor, config, agent)
    return app


def _raw_topic(app: Any, names: Any, config: KafkaConfig) -> Any:
    """AFEP topics as faust sees them: raw bytes (the Avro codec is ours), fixed partitions."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=config.partitions,
    )


def _add_agent(
    app: Any, reactor: Reactor, executor: ThreadPoolExecutor, config: KafkaConfig, agent: ModuleType
) -> None:
    names = sorted({topic_for(t.__name__, config.prefix) for t in agent.SUBSCRIBES})
    topic = _raw_topic(app, names, config)

    async def consume(stream: Any) -> None:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            message = event.message
            try:
                envelope = from_record(event.value, message.headers)
            except NotAnAfepRecord:
                log.warning("skipping a record without AFEP headers on %s[%d]", message.topic, message.partition)
                continue
            where = (message.topic, message.partition)
            outcome = await handle_until_done(
                partial(loop.run_in_executor, executor, reactor.handle, agent, envelope, *where),
                f"{agent.NAME} on {envelope.event_type}@{envelope.position} ({where[0]}[{where[1]}])",
            )
            log.debug("%s %s %s@%d", agent.NAME, outcome, envelope.event_type, envelope.position)

    app.agent(topic, name=f"afep.agents.{agent.NAME}")(consume)


def transient(error: BaseException) -> bool:
    """A failure of the infrastructure that a later attempt may not meet: the store locked,
    unreachable or busy, a write that lost a race. Anything else is a bug and is raised."""
    from eventsourcing.persistence import InterfaceError, InternalError, OperationalError

    from commands.store import ConcurrencyConflict

    return isinstance(error, InterfaceError | InternalError | OperationalError | ConcurrencyConflict | OSError)


async def handle_until_done(
    handle: Callable[[], Awaitable[T]], what: str, *, first_delay: float = 0.5, max_delay: float = 30.0
) -> T:
    """Run one reaction until it is recorded. Agent bugs and refused commands already fail the
    job inside `react`; what reaches here is the store failing (locked, down) or a bug in the
    runtime. A transient failure is retried in place, with backoff, and the partition waits for
    it (at-least-once, in order; tracking keeps the recorded effect single): raising would crash
    the faust agent, and a restarted faust agent may never read its partition again. Anything
    else is raised, as before, so that a bug shows instead of looping."""
    delay = first_delay
    while True:
        try:
            return await handle()
        except Exception as error:
            if not transient(error):
                raise
            log.exception("reaction of %s failed; retrying in %.1f s", what, delay)
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)


def build_projector_app(
    catch_up: Callable[[], Any],
    config: KafkaConfig,
    *,
    instance_id: str,
    data_dir: Path,
    batch: int = 500,
    heartbeat: Callable[[], None] | None = None,
    tick: Callable[[], Any] | None = None,
) -> Any:
    """The read models as a consumer of every AFEP topic; `tick` runs every 2 s on the same thread.

    The read models need the log's total order, and per-job partitions only keep a job's
    order per topic. So a delivered batch says that the log has grown, and `catch_up`
    applies the store's events after the projection's checkpoint, in log order, each
    batch in one transaction with the checkpoint: a redelivered event is at or below the
    checkpoint and changes nothing, and the tables always equal a rebuild.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="afep-projector")
    app = faust_app(
        f"{config.prefix}-projector",
        config,
        instance_id=instance_id,
        data_dir=data_dir,
        heartbeat=heartbeat,
    )
    topic = _raw_topic(app, config.topics, config)

    async def project(stream: Any) -> None:
        loop = asyncio.get_running_loop()
        async for _values in stream.take(batch, within=0.5):
            await handle_until_done(partial(loop.run_in_executor, executor, catch_up), "the read models' catch-up")

    app.agent(topic, name="afep.projector")(project)
    if tick is not None:

        async def ticking() -> None:
            loop = asyncio.get_running_loop()
            await handle_until_done(partial(loop.run_in_executor, executor, tick), "the projector's tick")

        app.timer(2.0, name=f"{config.prefix}-projector.tick")(ticking)
    return app


def run(app: Any, *, loglevel: str = "WARNING") -> None:
    """Run a faust app in this process until SIGTERM/SIGINT."""
    from faust import Worker

    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
