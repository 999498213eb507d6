"""What a source string means, the same everywhere (jobs, connections, the explorer, the CLI).

- a plain path ending in .csv/.tsv/.txt/.parquet/.pq is a file;
- `upload://NAME` is a file in the tenant's upload area;
- `sqlite:///rel.db` / `duckdb:///rel.duckdb` are relative paths, `sqlite:////abs.db`
  absolute (the SQLAlchemy convention);
- `postgresql://user:pass@host:port/db` and `mysql://user:pass@host:port/db`, with
  URL-encoded credentials decoded once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

from processors.sources.errors import SourceError

FILE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
SCHEMES = {
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mysql+pymysql": "mysql",
    "upload": "upload",
}
SUPPORTED = "a .csv/.parquet file, upload://NAME, sqlite:///, duckdb:///, postgresql:// or mysql://"
# libpq/pymysql parameters a URI may carry; anything else (host=, passfile=, sslkey=...) is refused
_OPTIONS = {"sslmode", "application_name", "charset"}


class UnsupportedSource(SourceError):
    """The string is not a source AFEP can read; the message lists what is."""


@dataclass(frozen=True)
class Location:
    """A parsed source. `path` for files and file databases; the rest for servers."""

    kind: str  # csv | parquet | upload | sqlite | duckdb | postgresql | mysql
    path: str = ""
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    options: tuple[tuple[str, str], ...] = ()

    @property
    def is_file(self) -> bool:
        return self.kind in ("csv", "parquet", "upload", "sqlite", "duckdb")

    @property
    def is_server(self) -> bool:
        return self.kind in ("postgresql", "mysql")

    def with_path(self, path: str) -> Location:
        kind = self.kind if self.kind != "upload" else file_kind(path)
        return Location(kind, path)


def file_kind(path: str) -> str:
    kind = FILE_SUFFIXES.get(PurePosixPath(path).suffix.lower())
    if kind is None:
        raise UnsupportedSource(f"unsupported file type for {_shown(path)}: use .csv or .parquet")
    return kind


def _split(source: str) -> SplitResult:
    """`urlsplit`, with its ValueError (a bracketed host that is not an IPv6 address) as UnsupportedSource."""
    try:
        return urlsplit(source)
    except ValueError:
        raise UnsupportedSource(f"the host in {_shown(source)} is not a valid host name or IP address") from None


def is_uri(source: str) -> bool:
    return "://" in source and _split(source).scheme.lower() in SCHEMES


def parse(source: str) -> Location:
    """The Location of `source`, or UnsupportedSource."""
    if "\x00" in source:
        raise UnsupportedSource("a source cannot contain a NUL character")
    if "://" not in source:
        return Location(file_kind(source), source)
    parts = _split(source)
    kind = SCHEMES.get(parts.scheme.lower())
    if kind is None:
        raise UnsupportedSource(f"scheme {parts.scheme!r} is not supported; give {SUPPORTED}")
    if kind == "upload":
        name = unquote(source.split("://", 1)[1])
        return Location("upload", name)
    if kind in ("sqlite", "duckdb"):
        if parts.netloc:
            raise UnsupportedSource(
                f"{kind}:// takes a file, not a host: {kind}:///relative.db or {kind}:////absolute/path.db"
            )
        path = unquote(parts.path[1:])  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
        if not path:
            raise UnsupportedSource(f"name the database file: {kind}:///relative.db or {kind}:////absolute.db")
        return Location(kind, path)
    try:
        port = parts.port
    except ValueError:
        raise UnsupportedSource(f"the port in {_shown(source)} is not a number") from None
    try:
        host = parts.hostname or ""
    except ValueError:
        raise UnsupportedSource(f"the host in {_shown(source)} is not a valid host name or IP address") from None
    if "," in parts.netloc or any(c in host for c in "/\\ "):
        raise UnsupportedSource(f"give one host in {kind}://user:password@host:port/database")
    options = tuple(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted({k for k, _ in options} - _OPTIONS)
    if unknown:
        raise UnsupportedSource(f"URI parameter(s) {', '.join(unknown)} are not allowed; allowed: {sorted(_OPTIONS)}")
    return Location(
        kind,
        host=host,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
        options=options,
    )


def _shown(text: str, limit: int = 120) -> str:
    text = redact(text)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def redact(source: str) -> str:
    """`source` without its password, for messages and audit rows."""
    if "://" not in source or "@" not in source:
        return source
    scheme, rest = source.split("://", 1)
    userinfo, _, tail = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in userinfo else source


def public_location(source: str) -> str:
    """Where `source` points, safe to store in the clear and show: no password, no query options."""
    if "://" not in source or source.lower().startswith("upload://"):
        return source
    parts = urlsplit(source)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def as_source(location: Location) -> str:
    """The source string that `parse` reads back as `location` (file kinds only need a path)."""
    if location.kind in ("sqlite", "duckdb"):
        return f"{location.kind}:///{location.path}"
    if location.kind in ("csv", "parquet"):
        return location.path
    raise ValueError(f"{location.kind} sources keep their URI")
