"""Live SSE feeds: /api/v1/jobs/{id}/events and /api/v1/projects/{id}/events.

The SSE `id` is the global log position. A client reconnecting with
`Last-Event-ID: N` gets everything after N from the log (no gap, no duplicate)
and then follows live; the app's log follower wakes every feed on each append.
A job's feed ends with `event: end` after the job's terminal event; a project's
feed runs until the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from domain import activity, job
from domain.envelope import Envelope
from gateway.auth import Permission
from gateway.bootstrap import Services
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from gateway.public import public
from projections import directory, jobs
from projections.jobs import iso
from schemas.codec import event_to_dict, snake_name

router = APIRouter(tags=["streams"])
BATCH = 500


def message(envelope: Envelope) -> dict[str, Any]:
    """The seed's §5.2 shapes for traces and progress; domain events keep their own fields."""
    e, at = envelope.event, iso(envelope.occurred_at)
    if isinstance(e, activity.AgentTraced):
        return {
            "type": "agent_trace",
            "job_id": e.job_id,
            "agent_type": e.agent,
            "trace": {
                "type": e.kind,
                "content": e.message,
                "data": public(json.loads(e.data_json or "{}")),  # no server paths
                "timestamp": at,
            },
        }
    if isinstance(e, activity.ProgressReported):
        return {
            "type": "progress",
            "job_id": e.job_id,
            "agent_type": e.agent,
            "stage": e.stage,
            "progress": round(e.done / e.total, 4) if e.total else 0.0,
            "done": e.done,
            "total": e.total,
            "message": e.message,
            "timestamp": at,
        }
    return {
        "type": snake_name(envelope.event_type),
        "event_type": envelope.event_type,
        "job_id": getattr(e, "job_id", ""),
        "agent_type": agent_of(envelope),
        "actor": envelope.actor,
        "data": public(event_to_dict(e)),  # no server paths (SchemaAnalyzed.dataset_path)
        "timestamp": at,
    }


def agent_of(envelope: Envelope) -> str | None:
    return getattr(envelope.event, "agent", None) or (envelope.actor if envelope.causation_id else None)


def wanted(envelope: Envelope, event_types: set[str], agent_types: set[str]) -> bool:
    if event_types:
        kind = message_type(envelope)
        if not {kind, envelope.event_type} & event_types:
            return False
    return not agent_types or agent_of(envelope) in agent_types


def message_type(envelope: Envelope) -> str:
    if isinstance(envelope.event, activity.AgentTraced):
        return "agent_trace"
    if isinstance(envelope.event, activity.ProgressReported):
        return "progress"
    return snake_name(envelope.event_type)


def _split(values: list[str] | None) -> set[str]:
    return {v.strip() for value in values or [] for v in value.split(",") if v.strip()}


MAX_POSITION = 2**63 - 1  # log positions are 64-bit signed integers in every store


def _start(last_event_id: str | None, query_value: int | None, services: Services) -> int:
    if last_event_id is not None:
        if not re.fullmatch(r"[0-9]{1,18}", last_event_id.strip()) or int(last_event_id) > MAX_POSITION:
            raise Problem(400, "Bad Request", "Last-Event-ID must be a log position (the `id` of an event you got)")
        return int(last_event_id)
    if query_value is not None:
        if not 0 <= query_value <= MAX_POSITION:
            raise Problem(400, "Bad Request", f"after must be a log position between 0 and {MAX_POSITION}")
        return query_value
    return 0


TERMINAL_EVENTS = (job.JobCompleted, job.JobFailed, job.JobCancelled)


async def feed(
    request: Request,
    services: Services,
    start: int,
    belongs: Callable[[Envelope], bool],
    event_types: set[str],
    agent_types: set[str],
    *,
    ends: bool = False,
) -> AsyncIterator[ServerSentEvent]:
    """Events after `start` that belong to the feed, live. With `ends` (a job's feed), the stream
    closes with `event: end` once the job's terminal event is delivered and the log holds nothing
    after it for the job (a retried job goes on: JobRetried clears the terminal mark)."""
    position = start
    terminal: Envelope | None = None
    while True:
        batch = services.recent_after(position)
        if batch is None:  # older than the shared tail: catch up from the store
            batch = await anyio.to_thread.run_sync(
                functools.partial(services.store.read_all, after=position, limit=BATCH)
            )
        for envelope in batch:
            position = envelope.position
            if not belongs(envelope):
                continue
            if isinstance(envelope.event, TERMINAL_EVENTS):
                terminal = envelope
            elif isinstance(envelope.event, job.JobRetried):
                terminal = None
            if wanted(envelope, event_types, agent_types):
                yield ServerSentEvent(
                    data=json.dumps(public(message(envelope), services.settings.data_dir), default=str),
                    id=str(envelope.position),
                    event=message_type(envelope),
                )
        if len(batch) >= BATCH:
            continue
        if ends and terminal is not None:
            status = {job.JobCompleted: "completed", job.JobFailed: "failed"}.get(type(terminal.event), "cancelled")
            yield ServerSentEvent(
                data=json.dumps({"type": "end", "job_id": getattr(terminal.event, "job_id", ""), "status": status}),
                id=str(position),
                event="end",
            )
            return
        if await request.is_disconnected():
            return
        async with services.log_changed:
            if services.head <= position:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(services.log_changed.wait(), timeout=1.0)


def _response(
    request: Request,
    services: Services,
    start: int,
    belongs: Callable[[Envelope], bool],
    event_types: list[str] | None,
    agent_types: list[str] | None,
    *,
    ends: bool = False,
) -> EventSourceResponse:
    return EventSourceResponse(
        feed(request, services, start, belongs, _split(event_types), _split(agent_types), ends=ends),
        ping=services.heartbeat_seconds,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse)
async def job_events(
    job_id: str,
    request: Request,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    event_types: Annotated[list[str] | None, Query()] = None,
    agent_types: Annotated[list[str] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    after: int | None = None,
) -> EventSourceResponse:
    if await anyio.to_thread.run_sync(jobs.get_job, services.db, auditor.principal.tenant_id, job_id) is None:
        raise not_found("job", job_id, "list your jobs with GET /api/v1/jobs")
    start = _start(last_event_id, after, services)
    return _response(
        request,
        services,
        start,
        lambda e: getattr(e.event, "job_id", None) == job_id,
        event_types,
        agent_types,
        ends=True,
    )


@router.get("/projects/{project_id}/events", response_class=EventSourceResponse)
async def project_events(
    project_id: str,
    request: Request,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    event_types: Annotated[list[str] | None, Query()] = None,
    agent_types: Annotated[list[str] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    after: int | None = None,
) -> EventSourceResponse:
    tenant = auditor.principal.tenant_id
    if await anyio.to_thread.run_sync(directory.get_project, services.db, tenant, project_id) is None:
        raise not_found("project", project_id, "list them with GET /api/v1/projects")
    start = _start(last_event_id, after, services)
    members = await anyio.to_thread.run_sync(jobs.project_job_ids, services.db, tenant, project_id)

    def belongs(envelope: Envelope) -> bool:
        e = envelope.event
        if isinstance(e, job.JobRequested) and e.project_id == project_id and envelope.tenant_id == tenant:
            members.add(e.job_id)
        return getattr(e, "job_id", None) in members

    return _response(request, services, start, belongs, event_types, agent_types)
