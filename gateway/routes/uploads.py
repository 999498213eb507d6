"""/api/v1/uploads: a tenant's CSV and Parquet files, so that the API needs no server paths.

Files go to `<data_dir>/uploads/<tenant>/` under a sanitized name, streamed to
a temporary file and cut off at `max_upload_bytes` or the tenant's
`upload_quota_bytes` (413). The content is sniffed on the way: Parquet must
start and end with `PAR1`, CSV/TSV must be UTF-8 text, never a SQLite or DuckDB
database (422). Only a complete body (closing multipart boundary seen, 400
otherwise) that passed the checks is renamed into place, and never over an
existing upload unless `?replace=true` (409). A job or a connection names one
as `upload://NAME`. `admitted` is the source policy check that job and
connection commands run before anything is stored.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import IO, Any

import anyio
from fastapi import APIRouter, Request, Response

from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from processors.sources import Location, SourceError, file_columns, tenant_folder, upload_name
from processors.sources.uri import file_kind
from projections import directory

router = APIRouter(prefix="/uploads", tags=["uploads"])
CONNECTION_PREFIX = "connection://"
SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
PARQUET_SUFFIXES = (".parquet", ".pq")
HEAD_BYTES = 64 * 1024
PARQUET_MAGIC = b"PAR1"
SQLITE_HEADER = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # at offset 8 of a DuckDB database file
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def source_problem(error: SourceError) -> Problem:
    return Problem(422, "Unprocessable Content", str(error), kind="source-unavailable")


def admitted(services: ServicesDep, auditor: Auditor, source: str, table: str | None = None) -> Location:
    """The source's Location if the tenant may read it (a `connection://ID` through its URI), else an audited 422."""
    from processors.sources import check_source, redact

    tenant = auditor.principal.tenant_id
    shown = redact(source)[:512]

    if source.startswith(CONNECTION_PREFIX):
        connection_id = source.removeprefix(CONNECTION_PREFIX)
        uri = directory.connection_uri(services.db, services.settings.connection_secrets, tenant, connection_id)
        if uri is None:
            raise not_found("connection", connection_id, "list them with GET /api/v1/connections")
        source = uri
    try:
        return check_source(source, table, policy=services.settings.source_policy, tenant=tenant)
    except SourceError as error:
        problem = source_problem(error)
        auditor.record("job.create", "source", shown, new={"refused": problem.detail}, status=problem.status)
        raise problem from None


def sanitized(filename: str) -> str:
    """A safe file name for the upload area, from the client's name, or a 422 saying what to send."""
    base = PurePath(filename.replace("\\", "/")).name
    name = _UNSAFE.sub("_", base).strip(" .")[-200:].lstrip(" .-")
    if not name.lower().endswith(SUFFIXES):
        raise Problem(422, "Unprocessable Content", f"upload a .csv or .parquet file, not {filename[:100]!r}")
    checked = upload_name(name)
    if checked is None:
        raise Problem(422, "Unprocessable Content", f"rename the file: {filename[:100]!r} is not a usable name")
    return checked


def tenant_area(services: ServicesDep, tenant: str) -> Path:
    return services.settings.uploads_dir / tenant_folder(tenant)


def used_bytes(area: Path) -> int:
    """Bytes the tenant's upload area holds now, temporary files of uploads in progress included."""
    if not area.is_dir():
        return 0
    total = 0
    with os.scandir(area) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


class Content:
    """What the streamed bytes look like: the first 64 KiB, the last 4 bytes, and whether all are UTF-8."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = b""
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.utf8 = True

    def feed(self, data: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + data[-4:])[-4:]
        if self.utf8:
            try:
                self.decoder.decode(data)
            except UnicodeDecodeError:
                self.utf8 = False

    def refusal(self, name: str) -> Problem | None:
        """A 422 saying what a file called `name` must hold, or None when it holds that."""
        if name.lower().endswith(PARQUET_SUFFIXES):
            head, tail = bytes(self.head[:4]), self.tail
            if len(self.head) < 8 or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
                return Problem(
                    422,
                    "Unprocessable Content",
                    f"{name!r} is not a Parquet file (Parquet starts and ends with PAR1); "
                    "upload a Parquet file, or a CSV file named .csv",
                    kind="upload-content",
                )
            return None
        if self.utf8:
            try:
                self.decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.utf8 = False
        database = self.head.startswith(SQLITE_HEADER) or self.head[8:12] == DUCKDB_MAGIC
        if database or b"\x00" in self.head or not self.utf8:
            what = "a database file" if database else "not UTF-8 text"
            return Problem(
                422,
                "Unprocessable Content",
                f"{name!r} is {what}, but a .csv/.tsv upload must be UTF-8 text; "
                "export the table as UTF-8 CSV, or upload Parquet",
                kind="upload-content",
            )
        return None


def _has_rows(path: Path) -> bool:
    """A CSV file with a line after its header that is not blank."""
    with path.open("rb") as f:
        lines = (line for line in f if line.strip())
        return next(lines, None) is not None and next(lines, None) is not None


class _Receiver:
    """python-multipart callbacks: the part named `file` goes to a temporary file in the tenant's area."""

    def __init__(self, area: Path) -> None:
        self.area = area
        self.headers: dict[str, bytes] = {}
        self.field, self.value = b"", b""
        self.part_name = ""
        self.filename: str | None = None
        self.name_field = b""
        self.tmp: Path | None = None
        self.out: IO[bytes] | None = None
        self.size = 0
        self.content = Content()
        self.file_complete = False  # the file part's closing boundary was seen
        self.complete = False  # the body's closing boundary was seen

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.begin,
            "on_header_field": lambda d, s, e: setattr(self, "field", self.field + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "value", self.value + d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.data,
            "on_part_end": self.end,
            "on_end": self.finished,
        }

    def begin(self) -> None:
        self.headers, self.part_name = {}, ""

    def header_end(self) -> None:
        # raw bytes: a browser or curl sends a file name as UTF-8, which a str header would make
        # python-multipart re-encode as Latin-1 (and fail on any name outside it)
        self.headers[self.field.decode("latin-1").lower()] = bytes(self.value)
        self.field, self.value = b"", b""

    def headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get("content-disposition", b""))
        self.part_name = options.get(b"name", b"").decode("utf-8", "replace")
        if self.part_name == "file" and self.out is None:
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            self.area.mkdir(parents=True, exist_ok=True)
            self.tmp = self.area / f".upload-{uuid.uuid4().hex}.part"
            self.out = self.tmp.open("wb")

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.part_name == "file" and self.out is not None and not self.out.closed:
            chunk = data[start:end]
            self.out.write(chunk)
            self.content.feed(chunk)
            self.size += end - start
        elif self.part_name == "name" and len(self.name_field) < 1024:
            self.name_field += data[start:end]

    def end(self) -> None:
        if self.part_name == "file" and self.out is not None and not self.out.closed:
            self.out.close()
            self.file_complete = True

    def finished(self) -> None:
        self.complete = True

    def discard(self) -> None:
        if self.out is not None:
            self.out.close()
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.tmp.unlink()


def placed(tmp: Path, final: Path, replace: bool) -> None:
    """Move the checked temporary file to its name: atomically, and over an existing upload only if `replace`."""
    if replace:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # fails if the name exists, unlike a rename
    except FileExistsError:
        raise Problem(409, "Conflict", f"upload {final.name} exists; DELETE it first or send ?replace=true") from None
    tmp.unlink()


@router.post(
    "",
    status_code=201,
    description="Upload a CSV or Parquet file (multipart field `file`, optional field `name`). "
    "Use the returned `source` (upload://NAME) as a job's `source` or a connection's `uri`. "
    "An existing upload of the same name is kept (409) unless `replace=true`.",
)
async def upload(
    request: Request,
    services: ServicesDep,
    replace: bool = False,
    auditor: Auditor = allowed(Permission.CREATE_JOB),
) -> dict[str, Any]:
    from python_multipart import MultipartParser
    from python_multipart.multipart import parse_options_header

    limit, quota = services.settings.max_upload_bytes, services.settings.upload_quota_bytes
    too_large = Problem(413, "Content Too Large", f"uploads are limited to {limit} bytes; send a smaller file")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise too_large
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise Problem(422, "Unprocessable Content", "send multipart/form-data with the file in the field `file`")
    tenant = auditor.principal.tenant_id
    area = tenant_area(services, tenant)
    used = await anyio.to_thread.run_sync(used_bytes, area)
    over_quota = Problem(
        413,
        "Content Too Large",
        f"your uploads would exceed your tenant's quota of {quota} bytes ({used} in use); "
        "DELETE uploads you no longer need, or send a smaller file",
    )
    if declared.isdigit() and used + int(declared) > quota + 64 * 1024:
        raise over_quota
    receiver = _Receiver(area)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        async for chunk in request.stream():
            await anyio.to_thread.run_sync(parser.write, chunk)
            if receiver.size > limit:
                raise too_large
            if used + receiver.size > quota:
                raise over_quota
        if not receiver.complete or (receiver.tmp is not None and not receiver.file_complete):
            raise Problem(
                400,
                "Bad Request",
                "the upload is incomplete: the multipart body ended before its closing boundary; "
                "send the whole file again",
            )
        if receiver.tmp is None or receiver.filename is None:
            raise Problem(422, "Unprocessable Content", "send the file in the multipart field `file`")
        name = sanitized(receiver.name_field.decode("utf-8", "replace") or receiver.filename)
        refusal = receiver.content.refusal(name)
        if refusal is not None:
            raise refusal
        tmp, file_type = receiver.tmp, file_kind(name)
        if not await anyio.to_thread.run_sync(lambda: file_columns(Location(file_type, str(tmp)))):
            raise Problem(
                422,
                "Unprocessable Content",
                f"{name!r} has no columns to read: upload a CSV whose first line names its columns, or a Parquet "
                "file written by a Parquet library",
                kind="upload-content",
            )
        if file_type == "csv" and not await anyio.to_thread.run_sync(_has_rows, tmp):
            raise Problem(
                422,
                "Unprocessable Content",
                f"{name!r} has a header and no rows: upload the table with its rows",
                kind="upload-content",
            )
        await anyio.to_thread.run_sync(placed, receiver.tmp, receiver.tmp.parent / name, replace)
    except Problem as problem:
        receiver.discard()
        detail, status = problem.detail, problem.status
        await anyio.to_thread.run_sync(
            lambda: auditor.record("upload.create", "upload", "", new={"refused": detail}, status=status)
        )
        raise
    except Exception:  # noqa: BLE001 - python-multipart's parse errors and OS errors alike: one 422
        receiver.discard()
        raise Problem(
            422, "Unprocessable Content", "the multipart body is malformed; send the file in `file`"
        ) from None
    size = receiver.size
    await anyio.to_thread.run_sync(
        lambda: auditor.record("upload.create", "upload", name, new={"bytes": size}, status=201)
    )
    return {"source": f"upload://{name}", "name": name, "bytes": size}


def _listing(area: Path) -> list[dict[str, Any]]:
    if not area.is_dir():
        return []
    out = []
    for path in sorted(area.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.is_symlink():
            continue
        stat = path.stat()
        out.append(
            {
                "name": path.name,
                "source": f"upload://{path.name}",
                "bytes": stat.st_size,
                "modified": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
            }
        )
    return out


@router.get("")
def list_uploads(services: ServicesDep, auditor: Auditor = allowed(Permission.CREATE_JOB)) -> dict[str, Any]:
    return {"items": _listing(tenant_area(services, auditor.principal.tenant_id))}


@router.delete("/{name}", status_code=204)
def delete_upload(name: str, services: ServicesDep, auditor: Auditor = allowed(Permission.CREATE_JOB)) -> Response:
    area = tenant_area(services, auditor.principal.tenant_id)
    safe = upload_name(name)
    path = area / safe if safe else None
    if path is None or not path.is_file() or path.is_symlink():
        raise not_found("upload", name[:200], "list them with GET /api/v1/uploads")
    path.unlink()
    auditor.record("upload.delete", "upload", name, status=204)
    return Response(status_code=204)
