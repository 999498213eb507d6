"""The relay (transactional outbox): every stored event goes to Kafka, in store order.

The event store stays the source of truth. The relay reads the log after its position,
publishes each envelope (Avro value, metadata headers, keyed by job) and waits for the
broker's acknowledgements; then it records the batch's last position twice: in the
broker's marker topic and in the store's tracking table (processor `relay`).

It resumes from the lower of the two. A relay killed after publishing and before
recording republishes that batch (at-least-once; consumers drop what they tracked).
A broker that lost its storage has no marker, so the relay starts again from zero and
the whole log is replayed to it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from commands.store import EventStore, Tracking
from processors.kafka.broker import KafkaConfig, MarkerReader, ensure_topics, producer
from schemas.wire import to_record

log = logging.getLogger(__name__)
RELAY = "relay"


@dataclass
class Relay:
    store: EventStore
    config: KafkaConfig
    batch_size: int = 500
    published: int = 0  # records sent by this process (for throughput numbers)
    _producer: Any = None
    _marker: MarkerReader | None = None
    _marker_end: int = 0  # the marker topic's end offset after our last batch
    _position: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def connect(self) -> int:
        """Make sure the topics exist and find where to resume; returns that position."""
        ensure_topics(self.config)
        if self._producer is None:
            self._producer = producer(self.config)
        if self._marker is None:
            self._marker = MarkerReader(self.config)
        tracked = self.store.tracking_position(RELAY)
        marker, self._marker_end = self._marker.last()
        self._position = min(tracked, marker) if marker is not None else 0
        if marker is None and tracked:
            log.warning("the broker holds no relay marker: replaying the log from the start (store had %d)", tracked)
        return self._position

    def publish_once(self) -> int:
        """Publish one batch; returns how many events it sent."""
        position = self._position if self._position is not None else self.connect()
        assert self._marker is not None
        if self._marker.end_offset() < self._marker_end:  # the broker restarted without its storage
            log.warning("the broker lost its log (its relay marker went back); replaying from the start")
            self.reset()  # a fresh producer: the old one's metadata describes topics that are gone
            position = self.connect()
        batch = self.store.read_all(after=position, limit=self.batch_size)
        if not batch:
            return 0
        futures = []
        for envelope in batch:
            record = to_record(envelope, self.config.prefix)
            futures.append(
                self._producer.send(record.topic, key=record.key, value=record.value, headers=record.headers)
            )
        last = batch[-1].position
        marker = self._producer.send(self.config.marker_topic, value=str(last).encode(), partition=0)
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if the broker refused any record: nothing is recorded then
        self._marker_end = marker.get(timeout=30).offset + 1
        self.store.append([], tracking=Tracking(RELAY, last))
        self._position = last
        self.published += len(batch)
        return len(batch)

    def run(self, *, poll_seconds: float = 0.1, until: Any = None, on_pass: Any = None) -> None:
        """Publish until stopped (or `until()`); `on_pass()` after every pass that reached the broker."""
        while not self._stop.is_set():
            try:
                sent = self.publish_once()
            except Exception:
                log.exception("publishing failed; reconnecting")
                self.reset()
                self._stop.wait(1.0)
                continue
            if on_pass is not None:
                on_pass()
            if until is not None and until():
                return
            if sent < self.batch_size:
                self._stop.wait(poll_seconds)

    def reset(self) -> None:
        """Forget the connections and the position; the next batch reconnects and re-reads both."""
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception:
                log.debug("closing the producer failed", exc_info=True)
        if self._marker is not None:
            self._marker.close()
        self._producer = self._marker = None
        self._position = None

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        self.reset()
