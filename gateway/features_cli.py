"""`afep features`: approve, deprecate, sync, list, and read approved features online.

`approve`, `deprecate` and `sync` (a retry after a failed registration or materialization)
record the command, then wait for the feature-store agent to
register the feature in Feast (or to take it out): in this process when no server owns the
data dir (only that agent runs here, so no other job resumes), else by following the log
while the server's runtime (or a Kafka worker) does it. Feast is imported only by the
commands that use it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from commands.unit_of_work import execute, load_feature
from domain.envelope import Context, Envelope
from domain.feature import ApproveFeature, DeprecateFeature, Feature, SyncFeature

features_app = typer.Typer(
    no_args_is_help=True, help="Approve and deprecate features; list them; read approved ones online (Feast)."
)
console = Console()
err = Console(stderr=True)
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="all local state (default ./.afep or AFEP_DATA_DIR)")]
Wait = Annotated[float, typer.Option(help="seconds to wait for the feature store when a server does the work")]
REVIEWABLE = ("selected", "approved", "deprecated")


@features_app.command("approve")
def approve(
    ctx: typer.Context,
    feature_id: str,
    comment: Annotated[str, typer.Option(help="why it is approved (kept in the log)")] = "",
    data_dir: DataDir = None,
    wait: Wait = 600.0,
) -> None:
    """Approve a selected feature; the feature-store agent registers it in Feast and materializes it."""
    _transition(ctx, feature_id, ApproveFeature(feature_id, comment), data_dir, wait)


@features_app.command("deprecate")
def deprecate(
    ctx: typer.Context,
    feature_id: str,
    reason: Annotated[str, typer.Option(help="why it is withdrawn (kept in the log)")],
    data_dir: DataDir = None,
    wait: Wait = 600.0,
) -> None:
    """Deprecate a feature; an approved one leaves its Feast view (a new version without it) and online reads."""
    _transition(ctx, feature_id, DeprecateFeature(feature_id, reason), data_dir, wait)


@features_app.command("sync")
def sync(
    ctx: typer.Context,
    feature_id: str,
    reason: Annotated[str, typer.Option(help="why (kept in the log)")] = "",
    data_dir: DataDir = None,
    wait: Wait = 600.0,
) -> None:
    """Retry the feature store for an approved or deprecated feature (after a failed registration or
    materialization, once its cause is fixed); says what it found when all is in order."""
    _transition(ctx, feature_id, SyncFeature(feature_id, reason), data_dir, wait)


@features_app.command("list")
def list_features(
    job: Annotated[str | None, typer.Option(help="only this job's features")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="only this status (default: selected, approved and deprecated; any status with --job)"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Features to review and their place in the feature store, oldest first."""
    from domain.feature import FEATURE_STATUSES
    from gateway.cli import UsageError
    from gateway.runtime_wiring import build_store

    if status is not None and status not in FEATURE_STATUSES:
        raise UsageError(f"--status must be one of {', '.join(FEATURE_STATUSES)}, not {status!r}")
    if status is not None and status not in REVIEWABLE and job is None:
        raise UsageError(
            f"--status {status} lists one job's candidates: add --job ID (`afep jobs list` gives the ids); "
            f"without --job the list holds features that were selected ({', '.join(REVIEWABLE)})"
        )

    store = build_store(_settings(data_dir))
    table = Table(title="features" + (f" of job {job}" if job else ""))
    table.add_column("feature", no_wrap=True, min_width=36)  # the id `approve` and `serve-online` take
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("lift", no_wrap=True, justify="right")
    table.add_column("feature store", overflow="fold")
    shown = 0
    for feature in _features(store, job):
        if (status and feature.status != status) or (not status and feature.status not in REVIEWABLE):
            continue
        lift = next((e.lift for e in reversed(feature.evaluations) if e.lift is not None), None)
        table.add_row(
            feature.feature_id,
            feature.proposal.name,
            feature.status,
            f"{lift:+.3f}" if lift is not None else "",
            _feast(feature),
        )
        shown += 1
    console.print(table)
    if not shown:
        console.print("no features" + (f" of job {job}" if job else "") + "; `afep jobs list` shows the jobs")


@features_app.command("serve-online")
def serve_online(
    feature_id: str,
    entity: Annotated[list[str], typer.Option("--entity", help="an entity key to read (repeatable)")],
    data_dir: DataDir = None,
) -> None:
    """Print the feature's values in the online store for the given keys (Feast get_online_features)."""
    from gateway.cli import UsageError
    from gateway.runtime_wiring import build_store, feature_store_config
    from processors.featurestore.online import BadKey, NotServed, StoreUnavailable, read_online

    settings = _settings(data_dir)
    store = build_store(settings)
    try:
        with err.status("reading the online store (Feast starts in a few seconds)"):
            read = read_online(store, feature_store_config(settings), feature_id, entity)
    except (NotServed, BadKey, StoreUnavailable) as error:
        raise UsageError(str(error)) from None
    table = Table(title=f"{read.feature_view} v{read.version}: {read.field}")
    table.add_column(read.entity)
    table.add_column(read.field, justify="right")
    for row in read.values:
        table.add_row(str(row["entity"]), "—" if row["value"] is None else repr(row["value"]))
    console.print(table)
    if missing := [str(row["entity"]) for row in read.values if row["value"] is None and not row.get("expired")]:
        console.print(
            f"— no online value for {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}: "
            "a key that is not in the job's table, or a row where the feature is null"
        )
    if note := read.expired_note():
        console.print(note)


# ---------------------------------------------------------------------------------------------


def _settings(data_dir: Path | None) -> Any:
    """Every features command reads jobs' features: a data dir without a log is refused, not created."""
    from gateway.cli import _job_settings

    return _job_settings(data_dir)


def _transition(
    ctx: typer.Context,
    feature_id: str,
    command: ApproveFeature | DeprecateFeature | SyncFeature,
    data_dir: Path | None,
    wait: float,
) -> None:
    from gateway.cli import UsageError, _actor
    from gateway.datadir import DataDirInUse, DataDirLock
    from gateway.runtime_wiring import build_store
    from processors.featurestore.catalog import owned_job

    settings = _settings(data_dir)
    store = build_store(settings)
    feature = load_feature(store, feature_id)
    owner = owned_job(store, feature.job_id) if feature is not None else None
    if feature is None or owner is None:
        raise UsageError(f"no feature {feature_id!r}; see `afep features list`")
    context = Context(at=datetime.now(UTC), actor=_actor(), tenant_id=owner.tenant, correlation_id=feature.job_id)
    recorded = execute(store, [(command, context)])
    if not recorded:
        console.print(f"feature {feature_id} is already {feature.status}")
        _report(load_feature(store, feature_id), fail=True)  # an approval that did not reach the store says why
        return
    event = recorded[0]
    console.print(f"feature {feature_id} {feature.proposal.name!r} {load_feature(store, feature_id).status}")  # type: ignore[union-attr]
    try:
        lock = DataDirLock(settings.data_dir, f"afep features {ctx.info_name}").acquire()
    except DataDirInUse:  # a server owns the data dir: its runtime (or a Kafka worker) does the work
        console.print(f"{settings.data_dir} is in use by a server; waiting for its feature-store agent")
        _follow(store, event, wait)
    else:
        try:
            _run_agent(settings, store, event)
        finally:
            lock.release()
    _report(load_feature(store, feature_id), fail=True)


def _run_agent(settings: Any, store: Any, event: Envelope) -> None:
    """The feature-store agent alone, in this process, until it has handled `event`."""
    from gateway.runtime_wiring import build_workbench
    from processors.agents import feature_store
    from processors.runtime import LocalRuntime
    from processors.sources import SourcePolicy

    bench = build_workbench(settings, SourcePolicy.local(settings.data_dir))
    runtime = LocalRuntime(store, bench, agents=[feature_store], observers=[_progress])
    try:
        with err.status("feature store: importing Feast, then apply and materialize"):
            runtime.run_until_idle(until=lambda: store.tracking_position(feature_store.NAME) >= event.position)
    finally:
        runtime.stop()


def _follow(store: Any, event: Envelope, wait: float) -> None:
    """Follow the log until the agent of another process has reacted to `event` (or `wait` runs out)."""
    from gateway.cli import UsageError

    deadline = time.monotonic() + wait
    position = event.position
    with err.status("waiting for the feature-store agent"):
        while time.monotonic() < deadline:
            batch = store.read_all(after=position, limit=500)
            _progress(batch)
            if any(_answers(e, event) for e in batch):
                return
            position = batch[-1].position if batch else position
            if not batch:
                time.sleep(0.25)
    raise UsageError(
        f"the feature-store agent did not react within {wait:.0f} s; is the server (or a worker running "
        f"feature_store) up? `afep features list` shows the feature's state later"
    )


def _answers(envelope: Envelope, event: Envelope) -> bool:
    """The agent's outcome for `event`: the feature's registration or materialization, or the final
    trace of its reaction (a result or a decision; its first trace only announces the work)."""
    if envelope.stream_id == event.stream_id:
        return envelope.event_type in ("FeatureRegistered", "FeatureMaterialized")
    caused = envelope.causation_id == event.event_id and envelope.actor == "agent:feature_store"
    return caused and envelope.event_type == "AgentTraced" and envelope.event.kind in ("tool_result", "decision")


def _progress(envelopes: Sequence[Envelope]) -> None:
    for envelope in envelopes:
        e: Any = envelope.event
        if envelope.event_type == "AgentTraced" and e.agent == "feature_store":
            err.print(f"  [dim]feature store[/] {e.message}")


def _feast(feature: Feature) -> str:
    """Where the feature is in the feature store: view and version, entity, and its online state."""
    reg, mat = feature.registration, feature.materialization
    if reg is None:
        return f"not registered: {mat.detail}" if mat is not None and mat.status == "failed" else ""
    where = f"{reg.feature_view} v{reg.version} by {reg.entity}"
    if reg.status == "removed":
        return f"removed from {where}"
    if mat is None or mat.version != reg.version:
        return f"{where}, materializing"
    return f"{where}, " + (f"{mat.rows} rows online" if mat.status == "complete" else f"failed: {mat.detail}")


def _report(feature: Feature | None, *, fail: bool = False) -> None:
    from gateway.cli import UsageError
    from projections.registrations import ttl_text

    if feature is None:
        return
    reg, mat = feature.registration, feature.materialization
    if reg is not None:
        what = "registered in" if reg.status == "registered" else "removed from"
        ttl = f"ttl {ttl_text(reg.ttl_seconds)}" if reg.ttl_seconds else "no ttl"
        console.print(f"{what} Feast view {reg.feature_view} v{reg.version}, entity {reg.entity}, {ttl}")
    if mat is not None and (reg is None or mat.version == reg.version):
        if mat.status == "complete":
            console.print(f"online: {mat.detail}")
        elif fail and feature.status == "approved":  # a deprecated feature's last failure no longer matters
            state = "approved" if reg is None else f"registered in {reg.feature_view} v{reg.version}"
            raise UsageError(
                f"feature {feature.feature_id} is {state} but not served online: {mat.detail}; "
                f"fix the cause, then `afep features sync {feature.feature_id}`"
            )


def _features(store: Any, job_id: str | None) -> list[Feature]:
    if job_id is not None:
        from commands.unit_of_work import load_job

        job = load_job(store, job_id)
        if job is None:
            from gateway.cli import UsageError

            raise UsageError(f"no job {job_id!r}; see `afep jobs list`")
        ids = list(job.feature_ids)
    else:
        ids, position = [], 0
        while page := store.read_all(after=position, limit=5000, types=("FeatureSelected",)):
            ids += [e.event.feature_id for e in page]
            position = page[-1].position
    found = (load_feature(store, fid) for fid in dict.fromkeys(ids))
    return [f for f in found if f is not None]
