"""Which sources a tenant may read: files under its roots, databases on allowed hosts.

Over the API a tenant reads only files under its upload area
(`<data_dir>/uploads/<tenant>/`) and the operator's `source_roots` (`{tenant}`
in a root stands for the tenant's folder name), after symlinks and `..` are
resolved, and never the data dir's own files (event store, read models,
snapshots, other tenants' uploads) even when a root covers them; databases only
on the operator's `source_hosts`, never AFEP's own database. Every refusal, and
every missing file, gives the same `SourceUnavailable` message, so that nobody
learns from it whether a path exists or a port is open. The CLI, a local user,
runs with `SourcePolicy.local()`: full access, detailed messages.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from processors.sources.errors import SourceError, SourceUnavailable
from processors.sources.uri import Location, parse, redact

_TENANT_FOLDER = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._ -]{0,199}$")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
# Set on a database Location admitted by the local (CLI) policy: its sessions may use any role. A URI
# cannot carry it (`parse` refuses unknown options), and a Location without it gets the tenant's checks.
LOCAL_USER = ("afep_local_user", "1")


def tenant_folder(tenant: str) -> str:
    """The tenant's folder name: the id itself when it is a safe name, else a hash of it."""
    if _TENANT_FOLDER.match(tenant) and ".." not in tenant:
        return tenant
    return "t-" + hashlib.sha256(tenant.encode()).hexdigest()[:32]


def upload_name(name: str) -> str | None:
    """`name` if it is a safe file name in an upload area (no folders, no dot files), else None."""
    return name if _UPLOAD_NAME.match(name) and ".." not in name else None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


@dataclass(frozen=True)
class SourcePolicy:
    data_dir: Path | None = None
    roots: tuple[str, ...] = ()  # operator roots; "{tenant}" is replaced by the tenant's folder
    hosts: tuple[str, ...] = ()  # "host" or "host:port"
    internal_databases: tuple[tuple[str, int, str], ...] = ()  # (host, port, database) of AFEP's own
    unrestricted: bool = False

    @classmethod
    def local(cls, data_dir: Path | None = None) -> SourcePolicy:
        """A local user's policy (the CLI): every file and host, detailed errors."""
        return cls(data_dir=data_dir, unrestricted=True)

    def upload_dir(self, tenant: str) -> Path:
        if self.data_dir is None:
            raise SourceError("upload:// sources need a data dir")
        return Path(os.path.realpath(self.data_dir)) / "uploads" / tenant_folder(tenant)

    def admit(self, source: str, tenant: str, table: str | None = None) -> Location:
        """The source's Location with file paths made absolute and real, or a SourceError."""
        location = parse(source)
        if location.is_file:
            return location.with_path(str(self._file(location, source, tenant)))
        if self.unrestricted:
            return replace(location, options=(*location.options, LOCAL_USER))
        if not self._host_allowed(location):
            raise SourceUnavailable(redact(source))
        return location

    def _file(self, location: Location, source: str, tenant: str) -> Path:
        if location.kind == "upload":
            name = upload_name(location.path)
            if name is None:
                raise SourceUnavailable(source)
            path = self.upload_dir(tenant) / name
        else:
            path = Path(location.path)
            if not path.is_absolute():
                path = (self.upload_dir(tenant) if not self.unrestricted else Path.cwd()) / path
        real = Path(os.path.realpath(path))
        if self.unrestricted:
            return real
        own = self.upload_dir(tenant)
        roots = [own, *(Path(os.path.realpath(r.replace("{tenant}", tenant_folder(tenant)))) for r in self.roots)]
        internal = self.data_dir is not None and _inside(real, Path(os.path.realpath(self.data_dir)))
        allowed = any(_inside(real, root) for root in roots) and (not internal or _inside(real, own))
        if location.kind in ("sqlite", "duckdb") and _inside(real, own.parent):
            allowed = False  # upload areas hold CSV and Parquet only, never a database to open
        if not allowed or not real.is_file():
            raise SourceUnavailable(source)
        return real

    def _host_allowed(self, location: Location) -> bool:
        host = location.host.lower()
        if not host:
            return False  # no host means a local socket
        port = location.port or DEFAULT_PORTS[location.kind]
        for own_host, own_port, own_db in self.internal_databases:
            same_host = host == own_host or (host in _LOOPBACK and own_host in _LOOPBACK)
            if same_host and port == own_port and location.database == own_db:
                return False
        allowed = {h.lower().strip() for h in self.hosts}
        return host in allowed or f"{host}:{port}" in allowed
