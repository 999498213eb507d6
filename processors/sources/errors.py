"""Typed failures of the data-source package; each message says what to do next."""

from __future__ import annotations

from processors.profiling import InputError


class SourceError(InputError):
    """The data source cannot be read."""


class SourceUnavailable(SourceError):
    """Refused, missing or unreachable: one neutral message that says none of the three."""

    def __init__(self, source: str) -> None:
        shown = source.replace("\x00", "\\x00")
        shown = shown if len(shown) <= 200 else shown[:200] + "…"
        super().__init__(
            f"source {shown!r} is not available to your tenant: upload the file with POST /api/v1/uploads "
            "(then use upload://NAME) or ask your operator to allow the host"
        )


class RejectedQuery(SourceError):
    """The SQL is not a single read-only SELECT; the message says what to change."""


class QueryTimeout(SourceError):
    """The query ran past its time limit."""


class UnreadableFile(SourceError):
    """An admitted file that is not a readable CSV or Parquet file; shown by the name the tenant gave."""

    def __init__(self, shown: str) -> None:
        super().__init__(
            f"the file is not a readable CSV or Parquet file: {shown}; check that it opens as CSV or Parquet "
            "and upload it again with POST /api/v1/uploads"
        )
