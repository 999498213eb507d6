"""Wiring of the embedded runtime: the agents' workbench and the local runtime, from settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from commands.store import EventStore
from gateway.bootstrap import open_store
from gateway.settings import Settings
from processors.runtime import LocalRuntime, Observer
from processors.sources import SourceError, SourcePolicy, as_source
from processors.workbench import Workbench

build_store = open_store
CONNECTION_PREFIX = "connection://"


def connection_resolver(settings: Settings, policy: SourcePolicy) -> Callable[[str, str], str]:
    """What the schema agent loads for a job's source, checked against `policy` once more.

    `connection://ID` (jobs created over the API) becomes the tenant's decrypted URI;
    `upload://NAME` and relative paths become the file's real path. A source the policy
    refuses fails the job with the same neutral message the API gives.
    """
    opened: list[Any] = []

    def resolve(source: str, tenant: str) -> str:
        if source.startswith(CONNECTION_PREFIX):
            from projections.database import Database
            from projections.directory import UndecryptableConnection, connection_uri

            if not opened:
                opened.append(Database(settings.database_url or settings.readmodel_db_path))
            connection_id = source.removeprefix(CONNECTION_PREFIX)
            try:
                uri = connection_uri(opened[0], settings.connection_secrets, tenant, connection_id)
            except UndecryptableConnection as error:
                raise SourceError(str(error)) from None
            if uri is None:
                raise SourceError(
                    f"connection {connection_id!r} does not exist for tenant {tenant!r}; see GET /api/v1/connections"
                )
            source = uri
        location = policy.admit(source, tenant)
        return source if location.is_server else as_source(location)

    return resolve


def build_llm(settings: Settings) -> Any:
    """`LLMServices` (Claude, and Tavily when its key is set) when AFEP_ANTHROPIC_API_KEY is set; else None."""
    if not settings.anthropic_api_key:
        return None
    from processors.llm import Limits, LLMServices, Models
    from processors.llm.claude import AnthropicLLM
    from processors.llm.web import TavilySearch

    coders = tuple(m.strip() for m in settings.llm_coders.split(",") if m.strip())
    return LLMServices(
        llm=AnthropicLLM(settings.anthropic_api_key),
        models=Models(settings.llm_model_large, settings.llm_model_small, coders),
        limits=Limits(
            budget_tokens=settings.llm_budget_tokens,
            budget_usd=settings.llm_budget_usd,
            competing_features=settings.llm_competing_features,
        ),
        search=TavilySearch(settings.tavily_api_key) if settings.tavily_api_key else None,
        data_dir=settings.data_dir,
    )


def build_workbench(settings: Settings, policy: SourcePolicy | None = None) -> Workbench:
    """The agents' workbench; `policy` defaults to the API's (`settings.source_policy`)."""
    policy = policy or settings.source_policy
    return Workbench(
        llm=build_llm(settings),
        knowledge_dir=settings.data_dir / "knowledge",
        resolve_source=connection_resolver(settings, policy),
        source_policy=policy,
        datasets_dir=settings.datasets_dir,
        artifacts_dir=settings.artifacts_dir,
        sandbox_options={
            "wall_seconds": settings.sandbox_wall_seconds,
            "cpu_seconds": settings.sandbox_cpu_seconds,
            "memory_bytes": settings.sandbox_memory_bytes,
        },
    )


def build_runtime(
    settings: Settings,
    store: EventStore,
    observers: Sequence[Observer] = (),
    *,
    policy: SourcePolicy | None = None,
) -> LocalRuntime:
    """The embedded runtime; the CLI passes `SourcePolicy.local(...)`, the API keeps the default."""
    return LocalRuntime(store, build_workbench(settings, policy), observers=observers)
