"""Tenants, projects, connections and API keys: administrative records, stored as state.

These are not folded from the event log (the domain has no events for them yet);
they live in the read-model database next to the projections, through the same
SQL layer. Connection credentials are stored only as Fernet ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import Fernet

from projections.database import Database, Row
from projections.jobs import iso
from projections.pagination import Page, clamp_limit, decode_cursor, page_of

TIERS = ("free", "pro", "enterprise")
DDL = (
    """CREATE TABLE IF NOT EXISTS {tenants} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL, name TEXT NOT NULL, slug TEXT NOT NULL UNIQUE, tier TEXT NOT NULL,
        settings TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {projects} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL, tenant_id TEXT NOT NULL, name TEXT NOT NULL,
        description TEXT NOT NULL, default_connection_id TEXT, settings TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {connections} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL, tenant_id TEXT NOT NULL, project_id TEXT, name TEXT NOT NULL,
        kind TEXT NOT NULL, location TEXT NOT NULL, secret TEXT NOT NULL, schema_cache TEXT,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {api_keys} (
        key_hash TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL, role TEXT NOT NULL,
        created_at TEXT NOT NULL, revoked_at TEXT)""",
)
CONNECTION_KINDS = {
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mysql+pymysql": "mysql",
}
_PUBLIC = {
    "tenants": "id, name, slug, tier, settings, created_at, updated_at",
    "projects": "id, tenant_id, name, description, default_connection_id, settings, created_at, updated_at",
    "connections": "id, tenant_id, project_id, name, kind, location, schema_cache, created_at",
}


class UnsupportedConnection(ValueError):
    """The URI is not one we can read; the message lists what is supported."""


def create_tables(db: Database) -> None:
    db.run_script(DDL)


def _next_seq(db: Database, table: str) -> int:
    with db.transaction(write=False) as tx:
        return int(tx.scalar(f"SELECT COALESCE(MAX(seq), 0) AS s FROM {{{table}}}") or 0) + 1


def _json(row: Row | None, *columns: str) -> Row | None:
    if row is not None:
        for column in columns:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return row


# ------------------------------------------------------------------ tenants


def create_tenant(db: Database, tenant_id: str, name: str, slug: str, tier: str, at: datetime) -> Row:
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r} is unknown; use one of: {', '.join(TIERS)}")
    with db.transaction() as tx:
        tx.execute(
            """INSERT INTO {tenants} (id, seq, name, slug, tier, settings, created_at, updated_at)
            VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM {tenants}), ?, ?, ?, '{}', ?, ?)""",
            (tenant_id, name, slug, tier, iso(at), iso(at)),
        )
    return get_tenant(db, tenant_id)  # type: ignore[return-value]


def get_tenant(db: Database, tenant_id: str) -> Row | None:
    with db.transaction(write=False) as tx:
        return _json(tx.one(f"SELECT {_PUBLIC['tenants']} FROM {{tenants}} WHERE id = ?", (tenant_id,)), "settings")


def tenant_tier(db: Database, tenant_id: str) -> str:
    tenant = get_tenant(db, tenant_id)
    return str(tenant["tier"]) if tenant else "free"


def list_tenants(db: Database, tenant_ids: list[str] | None, *, cursor: str | None = None, limit: int = 50) -> Page:
    """All tenants (tenant_ids None: the platform operator) or only the given ones."""
    limit = clamp_limit(limit)
    where, params = ["seq > ?"], [decode_cursor(cursor) or 0]
    if tenant_ids is not None:
        where.append(f"id IN ({', '.join('?' * len(tenant_ids))})" if tenant_ids else "1 = 0")
        params += tenant_ids  # type: ignore[arg-type]
    with db.transaction(write=False) as tx:
        rows = tx.all(
            f"SELECT seq, {_PUBLIC['tenants']} FROM {{tenants}} WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            (*params, limit + 1),
        )
    page = page_of(rows, limit)
    return Page([_json(r, "settings") for r in page.items], page.next_cursor)  # type: ignore[misc]


def delete_tenant(db: Database, tenant_id: str) -> bool:
    with db.transaction() as tx:
        for table in ("projects", "connections", "api_keys"):
            tx.execute(f"DELETE FROM {{{table}}} WHERE tenant_id = ?", (tenant_id,))
        return tx.execute("DELETE FROM {tenants} WHERE id = ?", (tenant_id,)) > 0


# ----------------------------------------------------------------- projects


def create_project(
    db: Database,
    tenant_id: str,
    project_id: str,
    name: str,
    description: str,
    default_connection_id: str | None,
    at: datetime,
) -> Row:
    with db.transaction() as tx:
        tx.execute(
            """INSERT INTO {projects} (id, seq, tenant_id, name, description, default_connection_id, settings,
                created_at, updated_at)
            VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM {projects}), ?, ?, ?, ?, '{}', ?, ?)""",
            (project_id, tenant_id, name, description, default_connection_id, iso(at), iso(at)),
        )
    return get_project(db, tenant_id, project_id)  # type: ignore[return-value]


def get_project(db: Database, tenant_id: str, project_id: str) -> Row | None:
    with db.transaction(write=False) as tx:
        row = tx.one(
            f"SELECT {_PUBLIC['projects']} FROM {{projects}} WHERE id = ? AND tenant_id = ?", (project_id, tenant_id)
        )
    return _json(row, "settings")


def list_projects(db: Database, tenant_id: str, *, cursor: str | None = None, limit: int = 50) -> Page:
    limit = clamp_limit(limit)
    with db.transaction(write=False) as tx:
        rows = tx.all(
            f"SELECT seq, {_PUBLIC['projects']} FROM {{projects}} WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant_id, decode_cursor(cursor) or 0, limit + 1),
        )
    page = page_of(rows, limit)
    return Page([_json(r, "settings") for r in page.items], page.next_cursor)  # type: ignore[misc]


def delete_project(db: Database, tenant_id: str, project_id: str) -> bool:
    with db.transaction() as tx:
        return tx.execute("DELETE FROM {projects} WHERE id = ? AND tenant_id = ?", (project_id, tenant_id)) > 0


# -------------------------------------------------------------- connections


def cipher(secret_key: str) -> Fernet:
    """A Fernet key derived from the deployment secret (a separate derivation from the JWT use)."""
    digest = hashlib.sha256(b"afep/connection-credentials/v1\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def classify(uri: str) -> tuple[str, str]:
    """(kind, location without credentials) for a connection URI or a file path."""
    lowered = uri.lower()
    if "://" not in uri:
        for suffix, kind in ((".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet")):
            if lowered.endswith(suffix):
                return kind, uri
        raise UnsupportedConnection(
            f"{uri!r} is neither a .csv/.parquet path nor a URI; use sqlite:///, duckdb:///, postgresql:// or mysql://"
        )
    parts = urlsplit(uri)
    scheme_kind = CONNECTION_KINDS.get(parts.scheme.lower())
    if scheme_kind is None:
        raise UnsupportedConnection(
            f"scheme {parts.scheme!r} is not supported; use sqlite:///, duckdb:///, postgresql:// or mysql://"
        )
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return scheme_kind, urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def create_connection(
    db: Database,
    secret_key: str,
    tenant_id: str,
    connection_id: str,
    name: str,
    uri: str,
    project_id: str | None,
    at: datetime,
) -> Row:
    kind, location = classify(uri)
    secret = cipher(secret_key).encrypt(uri.encode()).decode()
    with db.transaction() as tx:
        tx.execute(
            """INSERT INTO {connections} (id, seq, tenant_id, project_id, name, kind, location, secret, created_at)
            VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM {connections}), ?, ?, ?, ?, ?, ?, ?)""",
            (connection_id, tenant_id, project_id, name, kind, location, secret, iso(at)),
        )
    return get_connection(db, tenant_id, connection_id)  # type: ignore[return-value]


def get_connection(db: Database, tenant_id: str, connection_id: str) -> Row | None:
    with db.transaction(write=False) as tx:
        row = tx.one(
            f"SELECT {_PUBLIC['connections']} FROM {{connections}} WHERE id = ? AND tenant_id = ?",
            (connection_id, tenant_id),
        )
    return _json(row, "schema_cache")


def connection_uri(db: Database, secret_key: str, tenant_id: str, connection_id: str) -> str | None:
    """The decrypted URI, for the code that opens the connection. Never returned by the API."""
    with db.transaction(write=False) as tx:
        secret = tx.scalar(
            "SELECT secret FROM {connections} WHERE id = ? AND tenant_id = ?", (connection_id, tenant_id)
        )
    return cipher(secret_key).decrypt(str(secret).encode()).decode() if secret else None


def list_connections(db: Database, tenant_id: str, *, cursor: str | None = None, limit: int = 50) -> Page:
    limit = clamp_limit(limit)
    with db.transaction(write=False) as tx:
        rows = tx.all(
            f"SELECT seq, {_PUBLIC['connections']} FROM {{connections}} "
            "WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant_id, decode_cursor(cursor) or 0, limit + 1),
        )
    page = page_of(rows, limit)
    return Page([_json(r, "schema_cache") for r in page.items], page.next_cursor)  # type: ignore[misc]


def cache_schema(db: Database, tenant_id: str, connection_id: str, schema: dict[str, Any]) -> None:
    with db.transaction() as tx:
        tx.execute(
            "UPDATE {connections} SET schema_cache = ? WHERE id = ? AND tenant_id = ?",
            (json.dumps(schema), connection_id, tenant_id),
        )


def delete_connection(db: Database, tenant_id: str, connection_id: str) -> bool:
    with db.transaction() as tx:
        return tx.execute("DELETE FROM {connections} WHERE id = ? AND tenant_id = ?", (connection_id, tenant_id)) > 0


# ----------------------------------------------------------------- API keys


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def store_api_key(db: Database, key: str, key_id: str, tenant_id: str, role: str, at: datetime) -> None:
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO {api_keys} (key_hash, key_id, tenant_id, role, created_at) VALUES (?, ?, ?, ?, ?)",
            (hash_key(key), key_id, tenant_id, role, iso(at)),
        )


def find_api_key(db: Database, key: str) -> Row | None:
    with db.transaction(write=False) as tx:
        return tx.one(
            "SELECT key_id, tenant_id, role FROM {api_keys} WHERE key_hash = ? AND revoked_at IS NULL", (hash_key(key),)
        )
