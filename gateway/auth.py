"""Who is calling: API keys and JWT bearer tokens, roles and the seed's §6.1 permission matrix."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from domain import validation
from domain.envelope import LOCAL_USER
from domain.errors import InvalidInput
from gateway.settings import Settings
from projections import directory
from projections.database import Database

KEY_PREFIX = "afep_"
PLATFORM_TENANT = "platform"  # its admins operate the platform: they manage every tenant


class Role(StrEnum):
    ADMIN = "admin"
    DATA_SCIENTIST = "data_scientist"
    VIEWER = "viewer"
    API_CLIENT = "api_client"


class Permission(StrEnum):
    CREATE_JOB = "create_job"
    VIEW_JOB = "view_job"
    CANCEL_JOB = "cancel_job"
    APPROVE_FEATURE = "approve_feature"
    VIEW_FEATURE = "view_feature"
    MANAGE_CONNECTIONS = "manage_connections"
    VIEW_AUDIT = "view_audit"
    MANAGE_TENANTS = "manage_tenants"
    MANAGE_WEBHOOKS = "manage_webhooks"


_ALL = frozenset(Role)
# Exactly the seed's §6.1 matrix, plus MANAGE_TENANTS and MANAGE_WEBHOOKS (Admin only), which it does not list:
# a webhook sends the project's events to a URL outside AFEP, as far as exporting them goes.
MATRIX: dict[Permission, frozenset[Role]] = {
    Permission.CREATE_JOB: frozenset({Role.ADMIN, Role.DATA_SCIENTIST, Role.API_CLIENT}),
    Permission.VIEW_JOB: _ALL,
    Permission.CANCEL_JOB: frozenset({Role.ADMIN, Role.DATA_SCIENTIST, Role.API_CLIENT}),
    Permission.APPROVE_FEATURE: frozenset({Role.ADMIN}),
    Permission.VIEW_FEATURE: _ALL,
    Permission.MANAGE_CONNECTIONS: frozenset({Role.ADMIN, Role.DATA_SCIENTIST}),
    Permission.VIEW_AUDIT: frozenset({Role.ADMIN}),
    Permission.MANAGE_TENANTS: frozenset({Role.ADMIN}),
    Permission.MANAGE_WEBHOOKS: frozenset({Role.ADMIN}),
}


class Unauthenticated(Exception):
    """No usable credentials; the message says which header to send.

    `actor` and `tenant_id` name the caller when the credential was recognised (a
    revoked key, a deleted tenant's token), for the audit trail of the refusal.
    """

    def __init__(self, message: str, *, actor: str = "anonymous", tenant_id: str = PLATFORM_TENANT) -> None:
        super().__init__(message)
        self.actor = actor
        self.tenant_id = tenant_id


@dataclass(frozen=True)
class Principal:
    actor: str
    tenant_id: str
    role: Role
    via: str  # api_key | jwt

    def can(self, permission: Permission) -> bool:
        return self.role in MATRIX[permission]

    @property
    def operates_platform(self) -> bool:
        return self.tenant_id == PLATFORM_TENANT and self.role is Role.ADMIN


def parse_role(text: str) -> Role:
    normalized = text.strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return Role(normalized)
    except ValueError:
        raise ValueError(f"role {text!r} is unknown; use one of: {', '.join(r.value for r in Role)}") from None


def readmodel_db(settings: Settings) -> Database:
    return Database(settings.database_url or settings.readmodel_db_path)


def create_api_key(
    settings: Settings, tenant: str, role: str, *, db: Database | None = None, actor: str | None = None
) -> str:
    """Mint an API key for `tenant` with `role`. Only its SHA-256 is stored; show the key once.
    `actor`: the person at the command line, whose act goes to the audit outbox.

    Raises directory.TenantDeleted for a tenant a platform admin deleted, ValueError for a
    tenant that is not an id (an empty one, spaces, `/`).
    """
    parsed = parse_role(role)
    try:
        validation.check_id("tenant", tenant)
    except InvalidInput:
        raise ValueError(
            f"tenant {tenant[:130]!r} is not a tenant id: use 1-128 letters, digits or . _ : @ -, "
            "starting with a letter or digit"
        ) from None
    own = db is None
    database = db or readmodel_db(settings)
    try:
        directory.create_tables(database)
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        directory.store_api_key(database, key, key_id, tenant, parsed.value, datetime.now(UTC), actor=actor)
        return key
    finally:
        if own:
            database.close()


# Actors the platform writes itself: an API key (`key:<id>`), a person at the command line
# (`user:<login>`, whose actions the audit trail derives from the log) and the agents. A token
# whose subject looked like one would pass for it in the log and the audit trail.
RESERVED_ACTORS = ("key:", LOCAL_USER, "agent:")


def key_id_of(key: str) -> str:
    """The public id inside an API key (`afep_<key id>_<secret>`)."""
    return key.removeprefix(KEY_PREFIX).split("_", 1)[0]


def issue_token(settings: Settings, actor: str, tenant: str, role: str, *, ttl: timedelta = timedelta(hours=1)) -> str:
    """An HS256 bearer token signed with settings.secret_key (for the CLI and tests)."""
    if not settings.secret_key:
        raise ValueError("set AFEP_SECRET_KEY to sign tokens")
    now = datetime.now(UTC)
    claims = {
        "sub": actor,
        "tenant": tenant,
        "role": parse_role(role).value,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, settings.secret_key, algorithm="HS256")


def _from_key(db: Database, key: str) -> Principal:
    row = directory.find_api_key(db, key)
    if row is None:
        raise Unauthenticated("the API key is unknown or revoked; create one with `afep keys create`")
    actor, tenant = f"key:{row['key_id']}", str(row["tenant_id"])
    if row["tenant_deleted_at"] is not None:
        raise Unauthenticated(str(directory.TenantDeleted(tenant)), actor=actor, tenant_id=tenant)
    if row["revoked_at"] is not None:
        raise Unauthenticated(
            f"the API key {row['key_id']} was revoked; ask an admin of your tenant for a new one",
            actor=actor,
            tenant_id=tenant,
        )
    return Principal(actor=f"key:{row['key_id']}", tenant_id=row["tenant_id"], role=Role(row["role"]), via="api_key")


def _from_jwt(settings: Settings, db: Database, token: str) -> Principal:
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"the bearer token is not a JWT ({error}); send an API key or a signed JWT") from None
    key: Any
    if algorithm == "HS256" and settings.secret_key:
        key = settings.secret_key
    elif algorithm == "RS256" and settings.jwt_public_key:
        key = settings.jwt_public_key
    else:
        raise Unauthenticated(
            f"tokens signed with {algorithm!r} are not accepted here; use HS256 or RS256 as configured"
        )
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"the bearer token was rejected ({error}); obtain a fresh token") from None
    if str(claims["sub"]).startswith(RESERVED_ACTORS):
        raise Unauthenticated(
            f"the token's subject {str(claims['sub'])[:60]!r} starts with one of {', '.join(RESERVED_ACTORS)}, "
            "which name API keys, command-line users and agents in the log; issue it for another subject"
        )
    tenant = claims.get("tenant") or claims.get("tid")
    role = claims.get("role") or next(iter(claims.get("roles") or []), None)
    if not tenant or not role:
        raise Unauthenticated("the token needs `tenant` and `role` claims; ask your identity provider to add them")
    try:
        parsed = parse_role(str(role))
    except ValueError as error:
        raise Unauthenticated(str(error)) from None
    if directory.is_deleted(db, str(tenant)):
        raise Unauthenticated(
            str(directory.TenantDeleted(str(tenant))), actor=str(claims["sub"]), tenant_id=str(tenant)
        )
    return Principal(actor=str(claims["sub"]), tenant_id=str(tenant), role=parsed, via="jwt")


def authenticate(settings: Settings, db: Database, authorization: str | None, api_key: str | None) -> Principal:
    if api_key:
        return _from_key(db, api_key)
    if not authorization:
        raise Unauthenticated("send `Authorization: Bearer <token or API key>` or `X-API-Key: <key>`")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated("use the Bearer scheme: `Authorization: Bearer <token or API key>`")
    credential = credential.strip()
    if credential.startswith(KEY_PREFIX):
        return _from_key(db, credential)
    return _from_jwt(settings, db, credential)
