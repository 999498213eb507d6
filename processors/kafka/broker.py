"""Talking to the Kafka-protocol broker with kafka-python-ng: topics, a producer, the relay's marker.

Topics are created explicitly with a fixed partition count (faust refuses topics a
broker auto-created with another count). The producer is not idempotent and not
transactional (Tansu supports neither); ordering per partition comes from one request
in flight, and duplicates are dropped by the consumers' tracking positions.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from schemas.wire import TOPIC_PREFIX, all_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str
    partitions: int = 4
    prefix: str = TOPIC_PREFIX

    @property
    def topics(self) -> tuple[str, ...]:
        return all_topics(self.prefix)

    @property
    def marker_topic(self) -> str:
        """One partition: the relay's last published log position, as the broker holds it."""
        return f"{self.prefix}.relay"


class TopicMismatch(RuntimeError):
    """AFEP's topics exist with another partition count than configured, holding a live log."""


def _marker_end(config: KafkaConfig) -> int:
    reader = MarkerReader(config)
    try:
        return reader.end_offset()
    finally:
        reader.close()


def ensure_topics(config: KafkaConfig) -> set[str]:
    """Create every AFEP topic that is missing or has the wrong partition count; returns the names it created.

    A broker that restarted without its storage auto-creates topics (with its default
    partition count) as soon as any client asks for their metadata. Such a topic is
    dropped and created again: everything on it is replayed from the store anyway. A
    mismatch on a broker that still holds the relay's marker is a configuration error.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=config.bootstrap, client_id="afep-admin", request_timeout_ms=15000)
    try:
        wanted = {t: config.partitions for t in config.topics} | {config.marker_topic: 1}
        existing = {
            d["topic"]: len(d["partitions"])
            for d in admin.describe_topics(list(wanted))
            if not d.get("error_code") and d.get("partitions")
        }
        wrong = [t for t, n in existing.items() if n != wanted[t]]
        if wrong and existing.get(config.marker_topic) == 1 and _marker_end(config) > 0:
            counts = ", ".join(f"{t} has {existing[t]}" for t in wrong)
            raise TopicMismatch(
                f"{counts} partitions, not {config.partitions} (AFEP_KAFKA_PARTITIONS), and the broker holds a relayed "
                "log: set AFEP_KAFKA_PARTITIONS to match, or delete the AFEP topics to have the log replayed"
            )
        if wrong:  # a wiped broker auto-created them: nothing on them is worth keeping
            log.warning("topics %s have the wrong partition count; recreating them", ", ".join(wrong))
            admin.delete_topics(wrong)
        created: set[str] = set()
        for name, partitions in wanted.items():
            if existing.get(name) == partitions:
                continue
            for attempt in range(20):
                try:
                    admin.create_topics([NewTopic(name, partitions, 1)])
                    created.add(name)
                    break
                except TopicAlreadyExistsError:  # another process was quicker, or the delete is not done
                    if name not in wrong:
                        break
                    time.sleep(0.1 * (attempt + 1))
        if created:
            log.info("created topics %s", ", ".join(sorted(created)))
        return created
    finally:
        with contextlib.suppress(Exception):
            admin.close()


def producer(config: KafkaConfig) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=config.bootstrap,
        client_id="afep-relay",
        acks="all",
        retries=5,
        max_in_flight_requests_per_connection=1,  # a job's events keep their order on a retry
        linger_ms=5,
        request_timeout_ms=15000,
    )


class MarkerReader:
    """Reads the relay's marker topic: its end offset (cheap, every batch) and its last value."""

    def __init__(self, config: KafkaConfig) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._partition = TopicPartition(config.marker_topic, 0)
        self._consumer = KafkaConsumer(
            bootstrap_servers=config.bootstrap, group_id=None, enable_auto_commit=False, request_timeout_ms=15000
        )
        self._consumer.assign([self._partition])

    def end_offset(self) -> int:
        return int(self._consumer.end_offsets([self._partition])[self._partition])

    def last(self) -> tuple[int | None, int]:
        """(the last position recorded, or None when the broker holds none; the end offset)."""
        end = self.end_offset()
        if not end:
            return None, 0
        self._consumer.seek(self._partition, end - 1)
        for _ in range(20):
            for records in self._consumer.poll(timeout_ms=500).values():
                if records:
                    return int(records[-1].value), end
        return None, end

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._consumer.close()
