"""The relay publishes the store to Kafka in store order, restart-safe, and replays to a wiped broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commands.recorder_store import SqliteEventStore
from commands.unit_of_work import Trace, execute
from domain.envelope import Context, Envelope
from domain.job import RequestJob
from processors.kafka.broker import KafkaConfig
from processors.kafka.relay import RELAY, Relay
from schemas.wire import from_record, topic_for

pytestmark = pytest.mark.kafka


def request(store: SqliteEventStore, job_id: str, traces: int = 3) -> None:
    ctx = Context(at=datetime(2026, 1, 1, tzinfo=UTC), tenant_id="acme", correlation_id=job_id)
    command = RequestJob(job_id, "p", "d.csv", None, "y", "auto", 60.0, 0, 1, 10)
    execute(store, [(command, ctx), *((Trace(job_id, "schema", "thought", f"t{i}"), ctx) for i in range(traces))])


def consume_all(config: KafkaConfig, expected: int, timeout: float = 60) -> list[Envelope]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=config.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in config.topics for p in range(config.partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        out: list[Envelope] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(from_record(r.value, r.headers) for r in records)
        return out
    finally:
        consumer.close()


def test_relay_publishes_in_store_order_with_headers_and_resumes(tansu: Any, tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    config = KafkaConfig(tansu.bootstrap, partitions=3)
    for i in range(4):
        request(store, f"job-{i}")
    relay = Relay(store, config, batch_size=7)
    while relay.publish_once():
        pass
    assert store.tracking_position(RELAY) == store.last_position() == 16
    relay.close()

    got = consume_all(config, 16)
    assert sorted(e.position for e in got) == list(range(1, 17))
    for job, topic in {(e.correlation_id, topic_for(e.event_type)) for e in got}:  # one partition, in log order
        positions = [e.position for e in got if e.correlation_id == job and topic_for(e.event_type) == topic]
        assert positions == sorted(positions)
    stored = {e.position: e for e in store.read_all()}
    assert all(stored[e.position] == e for e in got)  # the whole envelope survives the wire
    assert {topic_for(e.event_type) for e in got} == {"afep.job", "afep.activity"}

    request(store, "job-4")  # a restarted relay sends only what is new
    again = Relay(store, config)
    assert again.publish_once() == 4 and again.publish_once() == 0
    assert len(consume_all(config, 20)) == 20

    tansu.restart()  # memory storage lost: the relay notices and replays the whole log
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            again.publish_once()
        except Exception:
            again.reset()
            time.sleep(0.5)
            continue
        if again.published >= 24:
            break
    assert again.published == 24
    assert sorted(e.position for e in consume_all(config, 20)) == list(range(1, 21))
    again.close()
    store.close()


def test_a_partition_count_that_does_not_match_a_live_log_is_an_error_not_a_wipe(tansu: Any, tmp_path: Path) -> None:
    from processors.kafka.broker import TopicMismatch, ensure_topics

    store = SqliteEventStore(tmp_path / "events.db")
    request(store, "job-0")
    relay = Relay(store, KafkaConfig(tansu.bootstrap, partitions=2))
    assert relay.publish_once() == 4
    relay.close()
    with pytest.raises(TopicMismatch, match="AFEP_KAFKA_PARTITIONS"):
        ensure_topics(KafkaConfig(tansu.bootstrap, partitions=3))
    store.close()
