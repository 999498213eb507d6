"""The `afep` command: run a job, apply its features, inspect and replay jobs.

Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from commands.unit_of_work import execute, load_job
from domain.envelope import LOCAL_USER, Context
from domain.errors import DomainError
from domain.job import DEFAULT_MAX_CANDIDATES, DEFAULT_MAX_ROUNDS, MAX_LLM_TOKENS, MAX_LLM_USD, RequestJob, RetryJob
from domain.validation import MAX_BUDGET_SECONDS
from gateway import distributed, webhooks_cli
from gateway.features_cli import features_app
from gateway.settings import Settings
from processors.profiling import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="AFEP: autonomous feature engineering.")
jobs_app = typer.Typer(no_args_is_help=True, help="List, inspect, replay and resume jobs.")
app.add_typer(jobs_app, name="jobs")
console = Console(stderr=False)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="all local state (default ./.afep or AFEP_DATA_DIR)")]
TASKS = ("auto", "classification", "regression")
TERMINAL_EVENTS = ("JobCompleted", "JobFailed", "JobCancelled")


class UsageError(Exception):
    """Bad input at the command line: one line, exit 2."""


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings()
    # absolute, so that paths recorded in events (dataset snapshots, artifacts) work from any directory
    return settings.model_copy(update={"data_dir": (data_dir or settings.data_dir).resolve()})


def _job_settings(data_dir: Path | None) -> Settings:
    """`_settings` for a command that reads jobs: a data dir with no event log is a mistyped
    `--data-dir` (it would otherwise be created, empty, and answer 'no job')."""
    settings = _settings(data_dir)
    if not settings.database_url and not settings.event_db_path.exists():
        raise UsageError(
            f"no AFEP jobs in {settings.data_dir} (no {settings.event_db_path.name}): give the --data-dir your "
            "jobs ran with (or set AFEP_DATA_DIR)"
        )
    return settings


def _own(ctx: typer.Context, settings: Settings, command: str) -> None:
    """Hold the data dir's lock until this command ends (see gateway/datadir.py)."""
    from gateway.datadir import DataDirInUse, DataDirLock

    try:
        lock = DataDirLock(settings.data_dir, command).acquire()
    except DataDirInUse as error:
        raise UsageError(str(error)) from None
    ctx.call_on_close(lock.release)


def _terminal(store: Any, job_id: str) -> bool:
    job = load_job(store, job_id)
    return job is None or job.terminal


@app.command()
def run(
    ctx: typer.Context,
    data: Annotated[
        str, typer.Argument(help="CSV/Parquet path, or sqlite:///, duckdb:///, postgresql://, mysql:// URI")
    ],
    target: Annotated[str, typer.Option(help="column to predict")],
    task: Annotated[
        str,
        typer.Option(
            help="auto | classification (2 classes: ROC AUC; 3 to 20: multiclass log loss) | regression (RMSE)"
        ),
    ] = "auto",
    budget: Annotated[
        float,
        typer.Option(
            help="time budget in seconds for the search; a final confirmation under way (at most 3 finalists, "
            "the model a user trains) runs to its end, and the job says by how much it overran"
        ),
    ] = 60.0,
    seed: Annotated[int, typer.Option()] = 0,
    out: Annotated[Path, typer.Option(help="where features.json and result.json go")] = Path("out"),
    table: Annotated[str | None, typer.Option(help="table name for database URIs")] = None,
    max_rounds: Annotated[
        int, typer.Option(help="rounds at most (a second round explores around what the first kept)")
    ] = DEFAULT_MAX_ROUNDS,
    max_candidates: Annotated[int, typer.Option(help="candidates in the first round at most")] = DEFAULT_MAX_CANDIDATES,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live trace lines")] = False,
    entity: Annotated[
        str | None,
        typer.Option(help="the table's key column, which approved features are served by (default: its id column)"),
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            help="a column you vouch for (repeatable): kept even if the schema agent suspects it leaks the target",
        ),
    ] = None,
    llm_budget: Annotated[
        int | None,
        typer.Option(
            help="LLM tokens (in + out) this job may spend when AFEP_ANTHROPIC_API_KEY is set; then the offline "
            "agents take over (default AFEP_LLM_BUDGET_TOKENS)"
        ),
    ] = None,
    llm_budget_usd: Annotated[
        float | None, typer.Option(help="LLM dollars this job may spend (default: AFEP_LLM_BUDGET_USD, no cap)")
    ] = None,
    apply_to: Annotated[
        list[str] | None,
        typer.Option(
            "--apply",
            help="after the job, add the selected features to this table too (repeatable), "
            "written to OUT/applied/<name>.parquet; same as `afep apply` without a second start-up",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Run a whole feature-engineering job on the embedded runtime and write its results."""
    from gateway.console import LiveView
    from gateway.runtime_wiring import build_runtime, build_store
    from processors.agents import tracking
    from processors.engine.pool import shared_pool
    from processors.export import export_job
    from processors.sources import SourcePolicy, check_source

    if task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
    if not 0 < budget <= MAX_BUDGET_SECONDS:  # also false for NaN; inf is over the limit
        raise UsageError(f"--budget must be a number of seconds in (0, {MAX_BUDGET_SECONDS:g}], not {budget}")
    if not 0 <= seed <= 2**31 - 1:
        raise UsageError(f"--seed must be between 0 and {2**31 - 1}, not {seed}")
    if llm_budget is not None and not 0 <= llm_budget <= MAX_LLM_TOKENS:
        raise UsageError(f"--llm-budget must be a number of tokens in [0, {MAX_LLM_TOKENS}], not {llm_budget}")
    if llm_budget_usd is not None and not 0 <= llm_budget_usd <= MAX_LLM_USD:
        raise UsageError(f"--llm-budget-usd must be dollars in [0, {MAX_LLM_USD:g}], not {llm_budget_usd}")
    check_source(data, table)
    _check_out(out)
    applied = _apply_targets(apply_to or [], out)
    shared_pool().start()  # the fit workers import LightGBM while the job starts
    source = data if "://" in data else str(Path(data).resolve())
    settings = _settings(data_dir)
    _own(ctx, settings, "afep run")
    store = build_store(settings)
    job_id = str(uuid.uuid4())
    started = time.monotonic()
    command = RequestJob(
        job_id,
        "default",
        source,
        table,
        target,
        task,
        budget,
        seed,
        max_rounds,
        max_candidates,
        entity,
        llm_budget_tokens=llm_budget,
        llm_budget_usd=llm_budget_usd,
        keep_columns=tuple(dict.fromkeys(keep or ())),
    )
    execute(store, [(command, Context(at=datetime.now(UTC), actor=_actor(), correlation_id=job_id))])
    console.print(f"[bold]job {job_id}[/] on {data} -> target {target!r} (data dir {settings.data_dir})")
    view = LiveView(console, job_id, verbose=not quiet)
    ended: list[float] = []  # when the job ended: wall_seconds is the job's, not the tracking's after it

    def note_end(recorded: Any) -> None:
        if not ended and any(e.correlation_id == job_id and e.event_type in TERMINAL_EVENTS for e in recorded):
            ended.append(time.monotonic())

    runtime = build_runtime(settings, store, observers=[view, note_end], policy=SourcePolicy.local(settings.data_dir))
    runtime.bench.warm_up()
    try:
        with view:
            try:
                runtime.run_until_idle(until=lambda: _terminal(store, job_id))
                # the job's MLflow runs exist when `afep run` returns (AFEP_TRACKING=off: nothing to wait for)
                runtime.run_until_idle(until=lambda: tracking.settled(store, runtime.bench, job_id))
            except KeyboardInterrupt:
                _interrupted(job_id, settings.data_dir if data_dir else None, out)
        wall = (ended[0] if ended else time.monotonic()) - started
        result = export_job(store, job_id, out, wall_seconds=wall)
        _finish(result, out)
        failed: list[str] = []
        for source_path, target_path in applied:  # one table's problem does not skip the others
            try:
                _apply_one(out, source_path, None, target_path, runtime.bench.sandbox())
            except InputError as error:  # a source or apply problem, said in one line
                failed.append(source_path)
                print(f"afep: --apply {source_path}: {error}", file=sys.stderr)
        if failed:
            again = " ".join(f"`afep apply {out} {path} --out ...`" for path in failed)
            raise UsageError(f"the job's results are in {out}; {len(failed)} --apply table(s) failed, fix and {again}")
    finally:
        runtime.stop()


def _interrupted(job_id: str, data_dir: Path | None, out: Path) -> NoReturn:
    """Ctrl-C during a job: say how to continue it, exit 130."""
    here = f" --data-dir {data_dir}" if data_dir else ""
    print(f"afep: interrupted; `afep jobs resume {job_id}{here} --out {out}` continues it", file=sys.stderr)
    raise SystemExit(INTERRUPTED)


def _check_out(out: Path) -> None:
    """UsageError, before any work, when --out cannot be a folder (it or a parent is a file)."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise UsageError(f"--out {out}: {path} is a file, not a folder; give a folder for the results")
            return


def _apply_targets(sources: list[str], out: Path) -> list[tuple[str, Path]]:
    """(table, output path) for each --apply table; names must not collide."""
    from processors.sources import check_source

    targets: list[tuple[str, Path]] = []
    for source in sources:
        if "://" in source:
            raise UsageError(f"--apply takes CSV or Parquet files; for {source} use `afep apply OUT URI --table T`")
        check_source(source, None)
        if Path(source).stat().st_size == 0:
            raise UsageError(f"--apply {source} is an empty file; give a table with a header row")
        path = out / "applied" / f"{Path(source).stem}.parquet"
        if any(path == p for _, p in targets):
            raise UsageError(f"--apply: two tables would both be written to {path}; rename one of them")
        targets.append((source, path))
    return targets


def _apply_one(job_dir: Path, data: str, table: str | None, out: Path, sandbox: Any) -> None:
    from processors.apply import apply_features, read_features
    from processors.sources import load_table

    new = load_table(data, table)
    features = read_features(job_dir)
    names = [str(f.get("name")) for f in features]
    result = apply_features(job_dir, new, sandbox, features)
    if not names:
        console.print(f"the job in {job_dir} selected no features: the table is written as it is")
    elif replaced := [n for n in names if n in new.columns]:
        console.print(
            f"{data} already has column(s) {', '.join(replaced)}: replaced by the job's feature(s) of that name"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        result.write_csv(out)
    else:
        result.write_parquet(out)
    console.print(f"wrote {result.height} rows x {result.width} columns to {out}")


def _finish(result: dict[str, Any], out: Path) -> None:
    from gateway.console import finalists_table, results_table

    if result["status"] == "failed":
        raise UsageError(f"job failed: {result['failure']}")
    if result["status"] != "completed":
        job_id = result["job_id"]
        if result["status"] == "cancelled":
            message = f"job {job_id} was cancelled ({result['failure']}); `afep jobs resume {job_id} --retry` reruns it"
        else:
            message = (
                f"job {job_id} stopped while {result['status']} without finishing; "
                f"see `afep jobs replay {job_id}`, then `afep jobs resume {job_id}`"
            )
        print(f"afep: {message}", file=sys.stderr)
        raise SystemExit(1)
    features = json.loads((out / "features.json").read_text())
    console.print(results_table(result, features))
    finalists = finalists_table(result)
    if finalists is not None:
        console.print(finalists)
    for warning in result.get("warnings", []):
        if warning.startswith("--entity"):  # serving by that key will fail: say it now, not at approval
            console.print(f"warning: {warning}")
    console.print(f"wrote {out / 'features.json'} and {out / 'result.json'} in {result['wall_seconds']:.1f} s")


@app.command()
def apply(
    job_dir: Annotated[Path, typer.Argument(help="the --out directory of a finished `afep run`")],
    data: Annotated[str, typer.Argument(help="new rows: CSV/Parquet path or database URI")],
    out: Annotated[Path, typer.Option(help="output file, .csv or .parquet")],
    table: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Compute the selected features on new data (no target needed), exactly as evaluated."""
    from sandbox import Sandbox

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise UsageError(f"--out must be a file name ending in .csv or .parquet (e.g. scored.parquet), not {out}")
    with Sandbox() as sandbox:
        _apply_one(job_dir, data, table, out, sandbox)


@jobs_app.command("list")
def jobs_list(data_dir: DataDir = None) -> None:
    """All jobs in the log, newest last."""
    from rich.table import Table

    from gateway.runtime_wiring import build_store

    store = build_store(_job_settings(data_dir))
    table = Table(title="jobs")
    for column in ("job", "requested", "status", "stage", "target", "source", "selected"):
        table.add_column(column, overflow="fold")
    for envelope in _all(store, ["JobRequested"]):
        job = load_job(store, envelope.event.job_id)
        assert job is not None
        table.add_row(
            job.job_id,
            envelope.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            job.status,
            job.stage,
            job.request.target,
            job.request.source,
            str(len(job.selected_ids)),
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, data_dir: DataDir = None) -> None:
    """A job's state and selected features."""
    from gateway.console import finalists_table, results_table
    from gateway.runtime_wiring import build_store
    from processors.export import export_job

    settings = _job_settings(data_dir)
    store = build_store(settings)
    job = _job_or_exit(store, job_id)
    tmp = settings.data_dir / "exports" / job.job_id
    result = export_job(store, job.job_id, tmp)
    console.print_json(json.dumps(result, default=str))
    console.print(results_table(result, json.loads((tmp / "features.json").read_text())))
    finalists = finalists_table(result)
    if finalists is not None:
        console.print(finalists)


@jobs_app.command("replay")
def jobs_replay(
    job_id: str,
    data_dir: DataDir = None,
    traces: Annotated[bool, typer.Option(help="include agent traces and progress")] = True,
    collapse: Annotated[bool, typer.Option(help="fold runs of one event from one cause into a line")] = False,
) -> None:
    """The job's timeline, rebuilt from the event log, with causation links."""
    from gateway.console import timeline_lines
    from gateway.runtime_wiring import build_store

    store = build_store(_job_settings(data_dir))
    job = _job_or_exit(store, job_id)
    # the job's own events, and those about it that another job caused (its features re-registered
    # when a feature of another job on the same table was approved): as the HTTP history shows them
    envelopes = [
        e for e in _all(store) if e.correlation_id == job.job_id or getattr(e.event, "job_id", None) == job.job_id
    ]
    if not traces:
        envelopes = [e for e in envelopes if e.event_type not in ("AgentTraced", "ProgressReported")]
    for line in timeline_lines(envelopes, collapse=collapse):
        print(line)


@jobs_app.command("resume")
def jobs_resume(
    ctx: typer.Context,
    job_id: str,
    out: Annotated[
        Path | None,
        typer.Option(help="where features.json and result.json go (default out/; a finished job: only if given)"),
    ] = None,
    data_dir: DataDir = None,
    retry: Annotated[bool, typer.Option(help="retry a failed or cancelled job")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no live trace lines")] = False,
) -> None:
    """Finish an interrupted job: every agent resumes from its tracked position."""
    from gateway.console import LiveView
    from gateway.runtime_wiring import build_runtime, build_store
    from processors.agents import tracking
    from processors.export import export_job
    from processors.sources import SourcePolicy

    settings = _job_settings(data_dir)
    _own(ctx, settings, "afep jobs resume")
    store = build_store(settings)
    job = _job_or_exit(store, job_id)
    if retry:
        execute(
            store, [(RetryJob(job.job_id), Context(at=datetime.now(UTC), actor=_actor(), correlation_id=job.job_id))]
        )
    elif job.terminal:
        if job.status == "failed":
            raise UsageError(f"job failed: {job.failure}; `afep jobs resume {job.job_id} --retry` reruns it")
        if job.status == "cancelled":
            print(
                f"afep: job {job.job_id} was cancelled ({job.failure}); `afep jobs resume {job.job_id} --retry` "
                "reruns it",
                file=sys.stderr,
            )
            raise SystemExit(1)
        if out is None:  # nothing to finish: do not overwrite out/ with it
            console.print(
                f"job {job.job_id} is already {job.status}; `afep jobs show {job.job_id}` shows it, "
                "--out DIR writes its results there"
            )
            return
        console.print(f"job {job.job_id} is already {job.status}; writing its results to {out}")
    finished = job.terminal and not retry
    out = out or Path("out")
    _check_out(out)
    started = time.monotonic()
    view = LiveView(console, job.job_id, verbose=not quiet)
    runtime = build_runtime(settings, store, observers=[view], policy=SourcePolicy.local(settings.data_dir))
    try:
        with view:
            try:
                runtime.run_until_idle(until=lambda: _terminal(store, job.job_id))
                runtime.run_until_idle(until=lambda: tracking.settled(store, runtime.bench, job.job_id))
            except KeyboardInterrupt:
                _interrupted(job.job_id, settings.data_dir if data_dir else None, out)
    finally:
        runtime.stop()
    wall = None if finished else time.monotonic() - started  # a finished job: its time from the log
    _finish(export_job(store, job.job_id, out, wall_seconds=wall), out)


projections_app = typer.Typer(no_args_is_help=True, help="Read models: rebuild from the log.")
app.add_typer(projections_app, name="projections")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for the HTTP API.")
app.add_typer(keys_app, name="keys")


@projections_app.command("rebuild")
def projections_rebuild(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Drop the relational read models and ClickHouse events and replay the whole log into them."""
    from gateway.bootstrap import bootstrap

    settings = _settings(data_dir)
    _own(ctx, settings, "afep projections rebuild")
    services = bootstrap(settings)
    try:
        rows = services.projector.rebuild()
        events = services.events_projection.rebuild()
        console.print(f"replayed the log: {rows} events into the read models, {events} into ClickHouse events")
    finally:
        services.close()


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="tenant the key acts for")],
    role: Annotated[str, typer.Option(help="admin | data_scientist | viewer | api_client")],
    data_dir: DataDir = None,
) -> None:
    """Create an API key (printed once; only its hash is stored)."""
    from gateway.auth import create_api_key, parse_role
    from projections.directory import TenantDeleted, tenant_tier

    try:
        parse_role(role)
        key = create_api_key(_settings(data_dir), tenant, role, actor=_actor())
    except (ValueError, TenantDeleted) as error:
        raise UsageError(str(error)) from None
    console.print(key)
    with _directory(data_dir) as db:
        print(_tier_note(tenant, tenant_tier(db, tenant)), file=sys.stderr)


def _tier_note(tenant: str, tier: str) -> str:
    from gateway.ratelimit import RATE_PER_HOUR

    return (
        f"tenant {tenant!r} is on the {tier!r} tier: {RATE_PER_HOUR.get(tier, RATE_PER_HOUR['free'])} API "
        f"requests/hour; raise it with `afep tenants set-tier {tenant} pro`"
    )


@contextlib.contextmanager
def _directory(data_dir: Path | None) -> Iterator[Any]:
    """The read-model database with the directory tables (no data-dir lock: `serve` may be running)."""
    from gateway.auth import readmodel_db
    from projections.directory import create_tables

    db = readmodel_db(_settings(data_dir))
    try:
        create_tables(db)
        yield db
    finally:
        db.close()


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None, data_dir: DataDir = None
) -> None:
    """API keys: id, tenant, role, created, revoked (never the key or its hash)."""
    from rich.table import Table

    from projections.directory import list_api_keys

    with _directory(data_dir) as db:
        rows = list_api_keys(db, tenant)
    table = Table(title="API keys")
    for column in ("key id", "tenant", "role", "created", "revoked"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["key_id"], row["tenant_id"], row["role"], row["created_at"], row["revoked_at"] or "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke an API key: it is refused (401) from the next request on."""
    from projections.directory import revoke_api_key

    with _directory(data_dir) as db:
        row = revoke_api_key(db, key_id, datetime.now(UTC), actor=_actor())
    if row is None:
        raise UsageError(f"no API key {key_id!r}; see `afep keys list`")
    console.print(f"revoked key {key_id} of tenant {row['tenant_id']} at {row['revoked_at']}")


@keys_app.command("rotate-secret")
def keys_rotate_secret(data_dir: DataDir = None) -> None:
    """Re-encrypt every connection's credentials under the current AFEP_SECRET_KEY.

    Set AFEP_SECRET_KEYS_OLD to the previous secret(s) first, so that they can be decrypted.
    """
    from gateway.auth import PLATFORM_TENANT
    from projections.directory import rotate_secrets

    secrets = _settings(data_dir).connection_secrets
    if not secrets:
        raise UsageError("set AFEP_SECRET_KEY to the new secret (and AFEP_SECRET_KEYS_OLD to the old ones)")
    with _directory(data_dir) as db:
        rotated, stuck = rotate_secrets(db, secrets, actor=_actor(), at=datetime.now(UTC), tenant_id=PLATFORM_TENANT)
    console.print(f"re-encrypted {rotated} connection(s) under the current AFEP_SECRET_KEY")
    if stuck:
        raise UsageError(
            f"{len(stuck)} connection(s) decrypt with none of the secrets ({', '.join(stuck[:5])}); "
            "add their secret to AFEP_SECRET_KEYS_OLD or re-create them"
        )


tenants_app = typer.Typer(no_args_is_help=True, help="Tenants: rate-limit tiers.")
app.add_typer(tenants_app, name="tenants")


@tenants_app.command("set-tier")
def tenants_set_tier(
    tenant: str,
    tier: Annotated[str, typer.Argument(help="free (100 requests/hour) | pro (1,000) | enterprise (10,000)")],
    data_dir: DataDir = None,
) -> None:
    """Set a tenant's rate-limit tier (a running API picks it up within 30 s)."""
    from projections.directory import set_tier

    with _directory(data_dir) as db:
        try:
            set_tier(db, tenant, tier, datetime.now(UTC), actor=_actor())
        except ValueError as error:
            raise UsageError(str(error)) from None
    console.print(_tier_note(tenant, tier).split(";")[0])


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    data_dir: DataDir = None,
) -> None:
    """The HTTP API (commands, SSE feeds, replay, audit) with the agents running in the background."""
    import uvicorn

    from gateway.app import create_app
    from gateway.runtime_wiring import build_server_runtime, build_store

    settings = _settings(data_dir)
    _own(ctx, settings, "afep serve")
    store = build_store(settings)
    if settings.runtime == "kafka":  # the agents run in `afep worker` processes, fed by `afep relay`
        distributed.trace_to("afep-api", settings)
        uvicorn.run(create_app(settings, store=store), host=host, port=port)
        return
    runtime = build_server_runtime(settings, store)  # the agents and the webhook dispatcher
    runtime.start()
    try:
        uvicorn.run(create_app(settings, store=store, runtime=runtime), host=host, port=port)
    finally:
        runtime.stop()


@app.command("schemas")
def schemas_write() -> None:
    """Regenerate schemas/avro/*.avsc from the domain events."""
    from schemas.codec import write_schemas

    for path in write_schemas():
        console.print(str(path))


distributed.register(app, jobs_app)  # relay, worker, projector, jobs trace: the Kafka runtime's processes
webhooks_cli.register(app)  # afep webhooks add | list | deliveries | remove
app.add_typer(features_app, name="features")  # approve, deprecate, list, serve-online (gateway/features_cli.py)


def _all(store: Any, types: list[str] | None = None) -> list[Any]:
    out: list[Any] = []
    position = 0
    while True:
        page = store.read_all(after=position, limit=5000, types=types or ())
        if not page:
            return out
        out.extend(page)
        position = page[-1].position


def _job_or_exit(store: Any, job_id: str) -> Any:
    job = load_job(store, job_id)
    if job is None:
        raise UsageError(f"no job {job_id!r}; see `afep jobs list`")
    return job


def _actor() -> str:
    return f"{LOCAL_USER}{os.environ.get('USER', 'local')}"


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        # Not standalone: typer hands back, as the return value, the code of a `typer.Exit`
        # a command raised and 130 for Ctrl-C (its KeyboardInterrupt becomes Exit(130)).
        code = app(standalone_mode=False)
    except (UsageError, InputError, DomainError) as error:
        print(f"afep: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        code = INTERRUPTED
    except Exception as error:  # the command line's own usage errors (unknown option, missing --target, ...)
        if isinstance(error, _click_errors()):
            print(f"afep: {error.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
            raise SystemExit(2) from None
        raise
    if code == INTERRUPTED:
        print("afep: interrupted; `afep jobs resume ID` continues a job that had started", file=sys.stderr)
    if isinstance(code, int) and code:
        raise SystemExit(code)


INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def _click_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error base class: typer's bundled copy of click (typer >= 0.25) and click itself."""
    import click

    classes: list[type[Exception]] = [click.ClickException]
    with contextlib.suppress(ImportError):
        from typer._click.exceptions import ClickException

        classes.append(ClickException)
    return tuple(classes)


FAST_EXIT = ("run", "apply")


def entry() -> None:
    """The `afep` executable: `main`, then for `run` and `apply` an exit without teardown.

    Tearing down Polars, numpy, pyarrow and the rest took about 0.2 s after every job,
    a tenth of a small one. By then `run` and `apply` have stopped the runtime and closed
    the sandbox themselves, the event store has committed, the fit workers are waited
    for here (so their CPU time is the command's) and both output streams are flushed.
    Other commands (`serve`, `projections rebuild`, ...) exit the normal way, and so do
    errors that `main` does not turn into an exit code, with their traceback.
    """
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "")
    if command not in FAST_EXIT:
        main()
        return
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
    from processors.engine.pool import close_shared_pool

    close_shared_pool()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    # `python -m gateway.cli`: run the importable module's entry, so that the UsageError the
    # subcommand modules import (gateway.cli.UsageError) is the one caught, not __main__'s twin
    from gateway.cli import entry as _entry

    _entry()
