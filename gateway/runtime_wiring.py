"""Wiring of the embedded runtime: the agents' workbench, the local runtime, the webhook dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from commands.store import EventStore
from domain.webhook import RetryPolicy
from gateway.bootstrap import open_store
from gateway.settings import Settings
from processors.featurestore.config import FeatureStoreConfig
from processors.runtime import LocalRuntime, Observer
from processors.sources import SourceError, SourcePolicy, as_source
from processors.workbench import Workbench

if TYPE_CHECKING:
    from processors.webhooks.dispatcher import Dispatcher

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


def feature_store_config(settings: Settings) -> FeatureStoreConfig:
    """The feature-store agent's Feast setup (also what online reads use)."""
    return FeatureStoreConfig(
        root=settings.feature_repo_dir,
        online=settings.feast_online_store,
        redis_url=settings.redis_url,
        offline_url=settings.feast_offline_url,
        ttl_seconds=settings.feast_ttl_seconds,
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
        tracking_uri=settings.tracking_uri,
        tracking_artifacts=settings.mlflow_dir / "artifacts",
        feature_store=feature_store_config(settings),
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


def build_dispatcher(settings: Settings, store: EventStore) -> Dispatcher:
    """The webhook dispatcher: sends queued deliveries with the settings' retry policy and timeout."""
    from processors.webhooks.dispatcher import Dispatcher
    from processors.webhooks.sender import HttpSender

    base = settings.webhook_backoff_seconds
    return Dispatcher(
        store,
        HttpSender(settings.webhook_timeout_seconds, allow_private=settings.webhook_private_targets),
        server_secrets=settings.connection_secrets,
        policy=RetryPolicy(settings.webhook_max_attempts, base, max(base, settings.webhook_backoff_max_seconds)),
        timeout_seconds=settings.webhook_timeout_seconds,
        senders=settings.webhook_senders,
    )


class ServerRuntime:
    """What `afep serve` runs beside the API: the agents' loop and the webhook dispatcher, each on its
    own threads (an HTTP timeout never holds up an agent), started, woken and stopped together."""

    def __init__(self, runtime: LocalRuntime, dispatcher: Dispatcher) -> None:
        self.runtime = runtime
        self.dispatcher = dispatcher

    def start(self, poll_seconds: float = 0.2) -> None:
        self.dispatcher.start()
        self.runtime.start(poll_seconds)

    def wake(self) -> None:
        self.runtime.wake()
        self.dispatcher.wake()

    def stop(self) -> None:
        self.runtime.stop()
        self.dispatcher.stop()


def build_server_runtime(settings: Settings, store: EventStore) -> ServerRuntime:
    dispatcher = build_dispatcher(settings, store)
    return ServerRuntime(build_runtime(settings, store, observers=[dispatcher.observe]), dispatcher)
