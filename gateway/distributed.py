"""The distributed runtime's processes: `afep relay`, `afep worker`, `afep projector`, `afep jobs trace`.

With `AFEP_RUNTIME=kafka` the API only records commands; the relay publishes the log
to the broker at `AFEP_KAFKA_BOOTSTRAP`, workers run the agents, the projector feeds
the read models. All of them share the event store (`AFEP_DATABASE_URL`, or the SQLite
file under the data dir on one machine).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.settings import Settings

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="all local state (default ./.afep or AFEP_DATA_DIR)")
]
InstanceOption = Annotated[
    str | None,
    typer.Option(
        help="this process's static group member id (default HOST-PID); reuse it on restart to skip a rebalance"
    ),
]


def _settings(data_dir: Path | None) -> Settings:
    from gateway.cli import _settings as cli_settings

    return cli_settings(data_dir)


def kafka_config(settings: Settings) -> Any:
    from gateway.cli import UsageError
    from processors.kafka.broker import KafkaConfig

    if not settings.kafka_bootstrap:
        raise UsageError("set AFEP_KAFKA_BOOTSTRAP=host:port (the Kafka-protocol broker) for the distributed runtime")
    return KafkaConfig(settings.kafka_bootstrap, partitions=settings.kafka_partitions)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )


def trace_to(service: str, settings: Settings) -> Any:
    from processors.kafka import tracing

    provider = tracing.configure(
        service, settings.data_dir, otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    atexit.register(provider.shutdown)  # the OTLP exporter batches: flush on the way out
    return provider


def heartbeat_path(settings: Settings, service: str) -> Path:
    return settings.data_dir / "health" / f"{service}-{socket.gethostname()}"


def heartbeat(settings: Settings, service: str) -> Any:
    """A function that marks this process alive (for `afep health SERVICE`)."""
    path = heartbeat_path(settings, service)
    path.parent.mkdir(parents=True, exist_ok=True)

    def beat() -> None:
        path.write_text(f"{os.getpid()}\n")

    beat()
    return beat


def health(
    service: Annotated[str, typer.Argument(help="relay | worker | projector")],
    max_age: Annotated[float, typer.Option(help="seconds since the last heartbeat")] = 30.0,
    data_dir: DataDirOption = None,
) -> None:
    """Exit 0 if SERVICE on this host beat within --max-age seconds (a container healthcheck)."""
    import time

    path = heartbeat_path(_settings(data_dir), service)
    age = time.time() - path.stat().st_mtime if path.exists() else None
    if age is None or age > max_age:
        print(f"afep: {service} on {socket.gethostname()} is not alive (last beat: {age and f'{age:.0f} s ago'})")
        raise typer.Exit(1)
    print(f"{service} alive, beat {age:.1f} s ago")


def relay(
    data_dir: DataDirOption = None,
    batch_size: Annotated[int, typer.Option(help="events per publish")] = 500,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Publish every stored event to Kafka in store order (transactional outbox); restart-safe."""
    from gateway.runtime_wiring import build_store
    from processors.kafka.relay import Relay

    settings = _settings(data_dir)
    config = kafka_config(settings)
    _logging(log_level)
    store = build_store(settings)
    outbox = Relay(store, config, batch_size=batch_size)
    signal.signal(signal.SIGTERM, lambda *_: outbox.stop())
    logging.getLogger("afep.relay").info("relaying %s to %s", settings.data_dir, config.bootstrap)
    beat = heartbeat(settings, "relay")
    try:
        outbox.run(on_pass=beat)
    except KeyboardInterrupt:
        pass
    finally:
        outbox.close()
        store.close()


def worker(
    agents: Annotated[
        str | None, typer.Option(help="comma-separated agents to run (default all): schema,research,planner,…")
    ] = None,
    instance: InstanceOption = None,
    data_dir: DataDirOption = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "WARNING",
) -> None:
    """Run agents as faust stream processors; start more with the same --agents to share the partitions."""
    from gateway.cli import UsageError
    from gateway.runtime_wiring import build_store, build_workbench
    from processors.agents import AGENTS
    from processors.kafka.reaction import Reactor
    from processors.kafka.worker import build_worker_app, run

    by_name = {a.NAME: a for a in AGENTS}
    wanted = [n.strip() for n in agents.split(",") if n.strip()] if agents else list(by_name)
    unknown = [n for n in wanted if n not in by_name]
    if unknown or not wanted:
        raise UsageError(f"--agents: unknown {', '.join(unknown) or 'empty list'}; known: {', '.join(by_name)}")
    settings = _settings(data_dir)
    config = kafka_config(settings)
    _logging(log_level)
    trace_to("afep-worker", settings)
    store = build_store(settings)
    bench = build_workbench(settings)
    app = build_worker_app(
        Reactor(store, bench),
        config,
        [by_name[n] for n in wanted],
        instance_id=instance or f"{socket.gethostname()}-{os.getpid()}",
        data_dir=settings.data_dir,
        warm_up=bench.warm_up,
        heartbeat=heartbeat(settings, "worker"),
    )
    if "webhooks" in wanted:  # its own threads: it follows the store, off the faust loop and the reactions
        from gateway.runtime_wiring import build_dispatcher

        build_dispatcher(settings, store).start()
    run(app, loglevel=log_level)


def projector(
    instance: InstanceOption = None,
    data_dir: DataDirOption = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "WARNING",
) -> None:
    """Feed the read models (and ClickHouse events, with AFEP_CLICKHOUSE_URL) from the Kafka topics.

    Without a ClickHouse server the events table lives in embedded chdb, which one process
    owns (the API's); this projector then feeds the SQL read models only. With one, it also
    drains the key directory's audit outbox (`afep keys`, `afep tenants`) into the audit trail.
    """
    from processors.kafka.worker import build_projector_app, run
    from projections import directory
    from projections.clickhouse import ClickHouse, ClickHouseEventsProjection
    from projections.database import Database
    from projections.projector import Projector

    settings = _settings(data_dir)
    config = kafka_config(settings)
    _logging(log_level)
    store = _store(settings)
    db = Database(settings.database_url or settings.readmodel_db_path)
    readmodels = Projector(db, store)
    readmodels.create_tables()
    clickhouse = (
        ClickHouse(url=settings.clickhouse_url, path=settings.clickhouse_path) if settings.clickhouse_url else None
    )
    events = ClickHouseEventsProjection(clickhouse, store) if clickhouse is not None else None
    if events is not None:
        directory.create_tables(db)

    def catch_up() -> None:
        readmodels.catch_up()
        if events is not None:
            events.catch_up()

    app = build_projector_app(
        catch_up,
        config,
        instance_id=instance or f"{socket.gethostname()}-{os.getpid()}",
        data_dir=settings.data_dir,
        heartbeat=heartbeat(settings, "projector"),
        tick=(lambda: drain_outbox(events, db)) if events is not None else None,
    )
    try:
        run(app, loglevel=log_level)
    finally:
        for close in (clickhouse.close if clickhouse else None, db.close, store.close):
            if close is not None:
                close()


def _store(settings: Settings) -> Any:
    from gateway.runtime_wiring import build_store

    return build_store(settings)


def jobs_trace(job_id: str, data_dir: DataDirOption = None) -> None:
    """The job's trace: every reaction in every process, as a tree with durations."""
    from gateway.cli import UsageError
    from processors.kafka.tracing import read_spans, span_tree
    from schemas.wire import trace_id

    settings = _settings(data_dir)
    spans = read_spans(settings.data_dir, f"{trace_id(job_id):032x}")
    if not spans:
        raise UsageError(
            f"no spans for job {job_id!r} under {settings.data_dir / 'traces'}; "
            "spans are written by `afep worker` (or sent to OTEL_EXPORTER_OTLP_ENDPOINT when set)"
        )
    processes = {(s["service"], s["pid"]) for s in spans}
    print(f"trace {trace_id(job_id):032x}: {len(spans)} spans in {len(processes)} processes")
    for line in span_tree(spans):
        print(line)


def register(app: typer.Typer, jobs_app: typer.Typer) -> None:
    app.command()(relay)
    app.command()(worker)
    app.command()(projector)
    app.command()(health)
    jobs_app.command("trace")(jobs_trace)


def drain_outbox(events: Any, db: Any) -> None:
    """The projector's tick: the audit outbox into the trail. A failure is logged and the next
    tick retries (the rows stay in the outbox): it must not stop the projector's consumer."""
    try:
        events.audit.drain(db)
    except Exception:  # ClickHouse or the directory down: the rows wait for the next tick
        logging.getLogger("afep.projector").exception("copying the audit outbox into the trail failed; retrying")
