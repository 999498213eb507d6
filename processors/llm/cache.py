"""Identical requests are answered once: a response cache on disk, and coalescing of calls in flight.

The cache is keyed by the request's hash (model, system, messages, tools; `LLMRequest.key`)
under `<data dir>/llm/responses/`, so a rerun or another job asking the same thing pays
nothing. Two threads asking the same thing at the same time (competing code generation
runs models in parallel) make one call: the second waits for the first's answer.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from processors.llm.port import LLMReply


class ResponseCache:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[LLMReply]] = {}

    def get(self, key: str) -> LLMReply | None:
        if self.directory is None:
            return None
        path = self.directory / key[:2] / f"{key}.json"
        try:
            return LLMReply.from_dict(json.loads(path.read_text("utf-8")), cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, reply: LLMReply) -> None:
        if self.directory is None:
            return
        path = self.directory / key[:2] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(reply.to_dict(), default=str), "utf-8")
        tmp.replace(path)

    def coalesced(self, key: str, call: Callable[[], LLMReply]) -> tuple[LLMReply, bool]:
        """`call()` once per key at a time; (reply, True) for a caller that waited for another's call."""
        with self._lock:
            running = self._inflight.get(key)
            if running is None:
                mine: Future[LLMReply] = Future()
                self._inflight[key] = mine
        if running is not None:
            return running.result(), True
        try:
            reply = call()
        except BaseException as error:
            mine.set_exception(error)
            raise
        else:
            mine.set_result(reply)
            return reply, False
        finally:
            with self._lock:
                self._inflight.pop(key, None)


class SearchCache:
    """Web search results keyed by the normalised query (lower case, single spaces), on disk."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    @staticmethod
    def normalise(query: str) -> str:
        return " ".join(query.lower().split())

    def _path(self, kind: str, key: str) -> Path | None:
        if self.directory is None:
            return None
        import hashlib

        digest = hashlib.sha256(f"{kind}\0{key}".encode()).hexdigest()
        return self.directory / kind / f"{digest}.json"

    def get(self, kind: str, key: str) -> Any:
        path = self._path(kind, key)
        if path is None:
            return None
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, kind: str, key: str, value: Any) -> None:
        path = self._path(kind, key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(value, default=str), "utf-8")
        tmp.replace(path)
