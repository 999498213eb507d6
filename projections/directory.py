"""Tenants, projects, connections and API keys: administrative records, stored as state.

These are not folded from the event log (the domain has no events for them yet);
they live in the read-model database next to the projections, through the same
SQL layer. Connection credentials are stored only as Fernet ciphertext, under a key
derived from the deployment secret; previous secrets still decrypt (`MultiFernet`)
until `afep keys rotate-secret` re-encrypts everything under the current one.

Project and connection ids are scoped per tenant: the primary key is (tenant_id, id).
A tenant is deleted softly (`deleted_at`): its keys are revoked, its records stay.

What a person changes here at the command line (`afep keys`, `afep tenants`; `actor` given) goes,
in the same transaction, into an audit outbox: the process that owns the audit trail copies it in
(`ClickHouseAuditLog.drain`) under the row's id, so a crash before the delete copies nothing twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from projections.database import Database, Row, Tx
from projections.jobs import iso
from projections.pagination import Page, clamp_limit, decode_cursor, page_of

TIERS = ("free", "pro", "enterprise")
_PROJECTS = """CREATE TABLE IF NOT EXISTS {projects} (
        id TEXT NOT NULL, seq BIGINT NOT NULL, tenant_id TEXT NOT NULL, name TEXT NOT NULL,
        description TEXT NOT NULL, default_connection_id TEXT, settings TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (tenant_id, id))"""
_CONNECTIONS = """CREATE TABLE IF NOT EXISTS {connections} (
        id TEXT NOT NULL, seq BIGINT NOT NULL, tenant_id TEXT NOT NULL, project_id TEXT, name TEXT NOT NULL,
        kind TEXT NOT NULL, location TEXT NOT NULL, secret TEXT NOT NULL, schema_cache TEXT,
        created_at TEXT NOT NULL, PRIMARY KEY (tenant_id, id))"""
DDL = (
    """CREATE TABLE IF NOT EXISTS {tenants} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL, name TEXT NOT NULL, slug TEXT NOT NULL UNIQUE, tier TEXT NOT NULL,
        settings TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, deleted_at TEXT)""",
    _PROJECTS,
    _CONNECTIONS,
    """CREATE TABLE IF NOT EXISTS {api_keys} (
        key_hash TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL, role TEXT NOT NULL,
        created_at TEXT NOT NULL, revoked_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS {audit_outbox} (
        id TEXT PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, tenant_id TEXT NOT NULL, action TEXT NOT NULL,
        resource_type TEXT NOT NULL, resource_id TEXT NOT NULL, previous_state TEXT NOT NULL,
        new_state TEXT NOT NULL)""",
)
_PUBLIC = {
    "tenants": "id, name, slug, tier, settings, created_at, updated_at, deleted_at",
    "projects": "id, tenant_id, name, description, default_connection_id, settings, created_at, updated_at",
    "connections": "id, tenant_id, project_id, name, kind, location, schema_cache, created_at",
}


class UndecryptableConnection(ValueError):
    """A connection's credentials were encrypted under a secret this server no longer has."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(
            f"connection {connection_id!r} was encrypted with a secret this server no longer has; "
            "re-create it or set AFEP_SECRET_KEYS_OLD to the previous AFEP_SECRET_KEY"
        )
        self.connection_id = connection_id


class TenantDeleted(ValueError):
    """The tenant was deleted by a platform admin: no new keys, no access."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id!r} was deleted; ask the platform operator to restore it or use another")
        self.tenant_id = tenant_id


def create_tables(db: Database) -> None:
    db.run_script(DDL)
    with db.transaction() as tx:
        _migrate(tx)


# Data dirs made before ids were scoped per tenant have `id` alone as the primary key
# of projects and connections, and tenants without `deleted_at`: rebuild or extend them.
_REBUILD = {"projects": _PROJECTS, "connections": _CONNECTIONS}


def _migrate(tx: Tx) -> None:
    for name, ddl in _REBUILD.items():
        if _primary_key(tx, name) == ["id"]:
            columns = ", ".join(_columns(tx, name))
            tx.execute(ddl.replace("{" + name + "}", "{" + name + "_scoped}"))
            tx.execute(f"INSERT INTO {{{name}_scoped}} ({columns}) SELECT {columns} FROM {{{name}}}")
            tx.execute(f"DROP TABLE {{{name}}}")
            tx.execute(f"ALTER TABLE {{{name}_scoped}} RENAME TO {{{name}}}")
    if "deleted_at" not in _columns(tx, "tenants"):
        tx.execute("ALTER TABLE {tenants} ADD COLUMN deleted_at TEXT")


def _columns(tx: Tx, name: str) -> list[str]:
    if tx.dialect == "sqlite":
        return [r["name"] for r in tx.all(f"PRAGMA table_info({{{name}}})")]
    return [
        r["name"]
        for r in tx.all(
            f"SELECT attname AS name FROM pg_attribute WHERE attrelid = to_regclass('{{{name}}}') "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
    ]


def _primary_key(tx: Tx, name: str) -> list[str]:
    if tx.dialect == "sqlite":
        rows = [r for r in tx.all(f"PRAGMA table_info({{{name}}})") if r["pk"]]
        return [r["name"] for r in sorted(rows, key=lambda r: r["pk"])]
    return [
        r["name"]
        for r in tx.all(
            "SELECT a.attname AS name FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            f"WHERE i.indrelid = to_regclass('{{{name}}}') AND i.indisprimary ORDER BY a.attnum"
        )
    ]


def _next_seq(db: Database, table: str) -> int:
    with db.transaction(write=False) as tx:
        return int(tx.scalar(f"SELECT COALESCE(MAX(seq), 0) AS s FROM {{{table}}}") or 0) + 1


def _json(row: Row | None, *columns: str) -> Row | None:
    if row is not None:
        for column in columns:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return row


def _audit(
    tx: Tx,
    actor: str | None,
    at: datetime,
    tenant_id: str,
    action: str,
    resource: tuple[str, str],
    previous: Any,
    new: Any,
) -> None:
    """The outbox row of a person's change, named and stated as the API's audit row (never a key or secret)."""
    if actor is None:
        return
    states = ["" if s is None else json.dumps(s, default=str, sort_keys=True) for s in (previous, new)]
    tx.execute(
        """INSERT INTO {audit_outbox} (id, at, actor, tenant_id, action, resource_type, resource_id,
            previous_state, new_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (str(uuid.uuid4()), iso(at), actor, tenant_id, action, *resource, *states),
    )


def audit_outbox(db: Database, limit: int = 1000) -> list[Row]:
    with db.transaction(write=False) as tx:
        return tx.all("SELECT * FROM {audit_outbox} ORDER BY at, id LIMIT ?", (limit,))


def forget_audit(db: Database, ids: Sequence[str]) -> None:
    """Drop outbox rows once they are in the audit trail."""
    with db.transaction() as tx:
        for audit_id in ids:
            tx.execute("DELETE FROM {audit_outbox} WHERE id = ?", (audit_id,))


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
        return _tenant(tx, tenant_id)


def _tenant(tx: Tx, tenant_id: str) -> Row | None:
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


def is_deleted(db: Database, tenant_id: str) -> bool:
    with db.transaction(write=False) as tx:
        return tx.scalar("SELECT deleted_at FROM {tenants} WHERE id = ?", (tenant_id,)) is not None


def tenant_known(db: Database, tenant_id: str) -> bool:
    """A tenant exists once it has a row (POST /tenants) or an API key (`afep keys create`)."""
    with db.transaction(write=False) as tx:
        return bool(
            tx.scalar("SELECT id FROM {tenants} WHERE id = ?", (tenant_id,))
            or tx.scalar("SELECT key_id FROM {api_keys} WHERE tenant_id = ?", (tenant_id,))
        )


def _ensure_tenant(tx: Tx, tenant_id: str, at: datetime) -> None:
    """The row of a tenant that so far only had keys (made by `afep keys create`): free tier.

    Its slug is its id, unless another tenant's slug is that already (slugs are unique):
    then the id with a short digest of it."""
    if tx.one("SELECT id FROM {tenants} WHERE id = ?", (tenant_id,)) is not None:
        return
    slug = tenant_id
    if tx.one("SELECT id FROM {tenants} WHERE slug = ?", (slug,)) is not None:
        slug = f"{tenant_id[:100]}-{hashlib.sha256(tenant_id.encode()).hexdigest()[:8]}"
    tx.execute(
        """INSERT INTO {tenants} (id, seq, name, slug, tier, settings, created_at, updated_at)
        VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM {tenants}), ?, ?, 'free', '{}', ?, ?)
        ON CONFLICT (id) DO NOTHING""",
        (tenant_id, tenant_id, slug, iso(at), iso(at)),
    )


def set_tier(db: Database, tenant_id: str, tier: str, at: datetime, *, actor: str | None = None) -> Row:
    """`actor`: the person at the command line, audited as `tenant.set_tier`."""
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r} is unknown; use one of: {', '.join(TIERS)}")
    with db.transaction() as tx:
        before = _tenant(tx, tenant_id)
        _ensure_tenant(tx, tenant_id, at)
        tx.execute("UPDATE {tenants} SET tier = ?, updated_at = ? WHERE id = ?", (tier, iso(at), tenant_id))
        _audit(tx, actor, at, tenant_id, "tenant.set_tier", ("tenant", tenant_id), before, _tenant(tx, tenant_id))
    return get_tenant(db, tenant_id)  # type: ignore[return-value]


def delete_tenant(db: Database, tenant_id: str, at: datetime) -> int:
    """Soft delete: mark the tenant deleted and revoke its keys; jobs, projects and audit stay.

    Returns how many keys were revoked.
    """
    with db.transaction() as tx:
        _ensure_tenant(tx, tenant_id, at)
        tx.execute(
            "UPDATE {tenants} SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
            (iso(at), iso(at), tenant_id),
        )
        return tx.execute(
            "UPDATE {api_keys} SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL", (iso(at), tenant_id)
        )


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


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"afep/connection-credentials/v1\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def cipher(secrets: str | Sequence[str]) -> MultiFernet:
    """Fernet keys derived from the deployment secrets (a separate derivation from the JWT use).

    `secrets` is the current secret, or the current one followed by previous ones: new
    ciphertext uses the first, decryption tries each in turn.
    """
    keys = [secrets] if isinstance(secrets, str) else [k for k in secrets if k]
    if not keys:
        raise ValueError("no secret to encrypt connection credentials with; set AFEP_SECRET_KEY")
    return MultiFernet([_fernet(k) for k in keys])


def create_connection(
    db: Database,
    secret_key: str | Sequence[str],
    tenant_id: str,
    connection_id: str,
    name: str,
    uri: str,
    project_id: str | None,
    at: datetime,
    *,
    kind: str,
    location: str,
) -> Row:
    """Store a connection: `uri` only encrypted; `kind` and `location` (no credentials) in the clear."""
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


def connection_uri(db: Database, secrets: str | Sequence[str], tenant_id: str, connection_id: str) -> str | None:
    """The decrypted URI, for the code that opens the connection. Never returned by the API.

    `secrets`: the current secret, or it and the previous ones (`Settings.connection_secrets`).
    Raises UndecryptableConnection when none of them decrypts it.
    """
    with db.transaction(write=False) as tx:
        secret = tx.scalar(
            "SELECT secret FROM {connections} WHERE id = ? AND tenant_id = ?", (connection_id, tenant_id)
        )
    if not secret:
        return None
    try:
        return cipher(secrets).decrypt(str(secret).encode()).decode()
    except (InvalidToken, ValueError):
        raise UndecryptableConnection(connection_id) from None


def rotate_secrets(
    db: Database, secrets: Sequence[str], *, actor: str | None = None, at: datetime | None = None, tenant_id: str = ""
) -> tuple[int, list[str]]:
    """Re-encrypt every connection under the first of `secrets`.

    Returns (how many were re-encrypted, "tenant/id" of those no secret decrypts). `actor`: the
    person at the command line, audited as `connection.rotate_secret` in `tenant_id`'s trail at `at`.
    """
    keys = cipher(secrets)
    rotated, stuck = 0, []
    with db.transaction() as tx:
        for row in tx.all("SELECT tenant_id, id, secret FROM {connections} ORDER BY seq"):
            try:
                fresh = keys.rotate(str(row["secret"]).encode()).decode()
            except InvalidToken:
                stuck.append(f"{row['tenant_id']}/{row['id']}")
                continue
            tx.execute(
                "UPDATE {connections} SET secret = ? WHERE tenant_id = ? AND id = ?",
                (fresh, row["tenant_id"], row["id"]),
            )
            rotated += 1
        outcome = {"reencrypted": rotated, "undecryptable": stuck}
        _audit(
            tx, actor, at or datetime.now(UTC), tenant_id, "connection.rotate_secret", ("connection", ""), None, outcome
        )
    return rotated, stuck


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


def store_api_key(
    db: Database, key: str, key_id: str, tenant_id: str, role: str, at: datetime, *, actor: str | None = None
) -> None:
    """`actor`: the person at the command line, audited as `key.create` (the key id, never the key)."""
    with db.transaction() as tx:
        if tx.scalar("SELECT deleted_at FROM {tenants} WHERE id = ?", (tenant_id,)) is not None:
            raise TenantDeleted(tenant_id)
        tx.execute(
            "INSERT INTO {api_keys} (key_hash, key_id, tenant_id, role, created_at) VALUES (?, ?, ?, ?, ?)",
            (hash_key(key), key_id, tenant_id, role, iso(at)),
        )
        _audit(tx, actor, at, tenant_id, "key.create", ("api_key", key_id), None, _key(tx, key_id))


def find_api_key(db: Database, key: str) -> Row | None:
    """The key's row, revoked ones included (`revoked_at`), with `tenant_deleted_at`."""
    with db.transaction(write=False) as tx:
        return tx.one(
            "SELECT k.key_id, k.tenant_id, k.role, k.revoked_at, t.deleted_at AS tenant_deleted_at "
            "FROM {api_keys} k LEFT JOIN {tenants} t ON t.id = k.tenant_id WHERE k.key_hash = ?",
            (hash_key(key),),
        )


_KEY_COLUMNS = "key_id, tenant_id, role, created_at, revoked_at"


def list_api_keys(db: Database, tenant_id: str | None) -> list[Row]:
    """Every key (tenant_id None: the platform operator) or one tenant's; never the hash."""
    where, params = ("WHERE tenant_id = ?", (tenant_id,)) if tenant_id is not None else ("", ())
    with db.transaction(write=False) as tx:
        return tx.all(f"SELECT {_KEY_COLUMNS} FROM {{api_keys}} {where} ORDER BY created_at, key_id", params)


def get_api_key(db: Database, key_id: str) -> Row | None:
    with db.transaction(write=False) as tx:
        return _key(tx, key_id)


def _key(tx: Tx, key_id: str) -> Row | None:
    return tx.one(f"SELECT {_KEY_COLUMNS} FROM {{api_keys}} WHERE key_id = ?", (key_id,))


def revoke_api_key(db: Database, key_id: str, at: datetime, *, actor: str | None = None) -> Row | None:
    """Revoke the key (idempotent); None when there is no such key. `actor`: the person at the
    command line, audited as `key.revoke`."""
    with db.transaction() as tx:
        before = _key(tx, key_id)
        tx.execute("UPDATE {api_keys} SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (iso(at), key_id))
        after = _key(tx, key_id)
        if before is not None:
            _audit(tx, actor, at, before["tenant_id"], "key.revoke", ("api_key", key_id), before, after)
    return after
