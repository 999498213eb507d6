"""Lineage edges: source column -> feature, feature -> domain source, feature -> agent execution,
event and job, feature -> the Feast view version it is registered in (or removed from) and
materialized to the online store with. Edges are keyed by their content, so re-applying one is a no-op."""

from __future__ import annotations

import hashlib
import json
from typing import cast

from domain import feature, job
from domain.envelope import Envelope
from domain.events import FEATURE_EVENTS
from projections.agents import execution_id
from projections.database import Database, Row, Tx

TABLES = ("lineage_edges", "lineage_sources")
DDL = (
    """CREATE TABLE IF NOT EXISTS {lineage_sources} (
        tenant_id TEXT NOT NULL, job_id TEXT NOT NULL, url TEXT NOT NULL, title TEXT NOT NULL,
        retrieved_at TEXT, excerpt TEXT NOT NULL, PRIMARY KEY (job_id, url))""",
    """CREATE TABLE IF NOT EXISTS {lineage_edges} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL, tenant_id TEXT NOT NULL, job_id TEXT NOT NULL,
        feature_id TEXT NOT NULL, src_type TEXT NOT NULL, src_id TEXT NOT NULL, dst_type TEXT NOT NULL,
        dst_id TEXT NOT NULL, relation TEXT NOT NULL, event_id TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {lineage_edges}_feature ON {lineage_edges} (tenant_id, feature_id, seq)",
)
_RECORDED = FEATURE_EVENTS  # every step of a feature's life is an edge to the agent that took it


def _edge(
    tx: Tx,
    envelope: Envelope,
    tenant: str,
    feature_id: str,
    job_id: str,
    src: tuple[str, str],
    dst: tuple[str, str],
    relation: str,
) -> None:
    key = hashlib.sha256(f"{src}|{dst}|{relation}".encode()).hexdigest()[:32]
    tx.execute(
        """INSERT INTO {lineage_edges} (id, seq, tenant_id, job_id, feature_id, src_type, src_id, dst_type, dst_id,
            relation, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING""",
        (key, envelope.position, tenant, job_id, feature_id, *src, *dst, relation, envelope.event_id),
    )


def apply(tx: Tx, envelope: Envelope) -> None:
    if isinstance(envelope.event, job.DomainResearched):
        _sources(tx, envelope, envelope.event)
        return
    if not isinstance(envelope.event, _RECORDED):
        return
    e = cast(feature.FeatureEvent, envelope.event)
    tenant = str(tx.scalar("SELECT tenant_id FROM {jobs} WHERE id = ?", (e.job_id,)) or envelope.tenant_id)
    node = ("feature", e.feature_id)

    def link(src: tuple[str, str], dst: tuple[str, str], relation: str) -> None:
        _edge(tx, envelope, tenant, e.feature_id, e.job_id, src, dst, relation)

    if isinstance(e, feature.FeatureProposed):
        for column in e.source_columns:
            link(("column", column), node, "derived_from")
        for url in e.domain_sources:
            link(node, ("domain_source", url), "cites")
        link(node, ("job", e.job_id), "part_of")
    if isinstance(e, feature.FeatureRegistered):  # the feature store's view, per version
        relation = "registered_in" if e.status == "registered" else "removed_from"
        link(node, ("feature_view", f"{e.feature_view} v{e.version}"), relation)
    if isinstance(e, feature.FeatureMaterialized) and e.status == "complete":
        link(node, ("online_store", f"{e.feature_view} v{e.version}"), "materialized_to")
    link(node, ("event", envelope.event_id), envelope.event_type)
    if envelope.causation_id is not None:
        link(node, ("agent_execution", execution_id(e.job_id, envelope.actor, envelope.causation_id)), "produced_by")


def _sources(tx: Tx, envelope: Envelope, e: job.DomainResearched) -> None:
    """The web pages the research read (url, title, retrieved_at, excerpt): what a `cites` edge points at."""
    try:
        web = json.loads(e.findings_json).get("web") or {}
    except (ValueError, AttributeError):
        return
    tenant = str(tx.scalar("SELECT tenant_id FROM {jobs} WHERE id = ?", (e.job_id,)) or envelope.tenant_id)
    for page in web.get("sources", []) if isinstance(web, dict) else []:
        if not isinstance(page, dict) or not page.get("url"):
            continue
        tx.execute(
            """INSERT INTO {lineage_sources} (tenant_id, job_id, url, title, retrieved_at, excerpt)
            VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, url) DO NOTHING""",
            (
                tenant,
                e.job_id,
                str(page["url"]),
                str(page.get("title") or ""),
                None if page.get("retrieved_at") is None else str(page["retrieved_at"]),
                str(page.get("excerpt") or "")[:2000],
            ),
        )


# ----------------------------------------------------------------- queries


def feature_lineage(db: Database, tenant_id: str, feature_id: str) -> dict[str, list[Row]]:
    """The lineage graph of one feature as nodes and edges (empty when the feature is not the tenant's)."""
    with db.transaction(write=False) as tx:
        edges = tx.all(
            """SELECT src_type, src_id, dst_type, dst_id, relation, event_id FROM {lineage_edges}
            WHERE tenant_id = ? AND feature_id = ? ORDER BY seq, id""",
            (tenant_id, feature_id),
        )
        job_ids = {e["dst_id"] for e in edges if e["dst_type"] == "job"}
        pages = {
            r["url"]: r
            for job_id in job_ids
            for r in tx.all(
                "SELECT url, title, retrieved_at, excerpt FROM {lineage_sources} WHERE tenant_id = ? AND job_id = ?",
                (tenant_id, job_id),
            )
        }
    nodes: dict[tuple[str, str], Row] = {}
    for edge in edges:
        for kind, ident in ((edge["src_type"], edge["src_id"]), (edge["dst_type"], edge["dst_id"])):
            node = {"type": kind, "id": ident}
            if kind == "domain_source" and ident in pages:
                node.update({k: pages[ident][k] for k in ("url", "title", "retrieved_at", "excerpt")})
            nodes.setdefault((kind, ident), node)
    return {"nodes": list(nodes.values()), "edges": edges}
