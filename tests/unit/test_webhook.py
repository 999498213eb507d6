"""The webhook aggregates: given events, when a command, then events (domain/webhook.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain import webhook as w
from domain.errors import ConflictingCommand, InvalidInput, InvalidTransition, UnknownAggregate

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
POLICY = w.RetryPolicy(max_attempts=3, base_seconds=1.0, max_seconds=4.0)
CIPHER = "gAAAAABfakeciphertext"


def subscribe(**overrides: object) -> w.Subscribe:
    fields: dict[str, object] = {
        "subscription_id": "s1",
        "tenant_id": "acme",
        "project_id": "risk",
        "url": "https://hooks.example.com/afep?x=1",
        "events": ("feature.approved", "job.failed"),
        "secret_ciphertext": CIPHER,
    }
    return w.Subscribe(**{**fields, **overrides})  # type: ignore[arg-type]


def given_subscription(*events: w.SubscriptionEvent) -> w.Subscription | None:
    state = None
    for event in events:
        state = w.evolve_subscription(state, event)
    return state


def given_delivery(*events: w.DeliveryEvent) -> w.Delivery | None:
    state = None
    for event in events:
        state = w.evolve_delivery(state, event)
    return state


BODY = w.payload("feature.approved", T0.isoformat(), {"feature_id": "f1"})
QUEUED = w.WebhookQueued("d1", "s1", "feature.approved", "e1", BODY, T0.isoformat())


def started(attempt: int, at: datetime = T0, lease: float = 10.0) -> w.WebhookAttemptStarted:
    return w.WebhookAttemptStarted("d1", attempt, (at + timedelta(seconds=lease)).isoformat())


def record(attempt: int, status: int | None, at: datetime = T0, jitter: float = 0.5) -> w.RecordAttempt:
    return w.RecordAttempt("d1", attempt, at, status, "" if status == 200 else "boom", 12.5, POLICY, jitter)


# ------------------------------------------------------------ subscriptions


def test_subscribe_records_the_subscription_once() -> None:
    (event,) = w.decide_subscription(subscribe(), None)
    assert isinstance(event, w.WebhookSubscribed) and event.secret_ciphertext == CIPHER
    state = given_subscription(event)
    assert state is not None and state.active
    assert w.decide_subscription(subscribe(), state) == ()
    with pytest.raises(ConflictingCommand):
        w.decide_subscription(subscribe(url="https://other.example.com/"), state)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/x", "https://"),
        ("https://user:pw@example.com/x", "credentials"),
        ("https://token@example.com/x", "credentials"),
        ("https:///nohost", "no host"),
        ("https://example.com:99999/", "port"),
        ("https://example.com/a b", "white space"),
        ("https://example.com/x#frag", "fragment"),
        ("https://example.com/\x00", "control character"),
        ("https://example.com/" + "a" * w.MAX_URL, "limit"),
        ("example.com/hook", "https://"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        w.decide_subscription(subscribe(url=url), None)


@pytest.mark.parametrize(
    ("events", "says"),
    [((), "at least one"), (("feature.created",), "not supported"), (("job.failed", "job.failed"), "twice")],
)
def test_event_names_are_checked(events: tuple[str, ...], says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        w.decide_subscription(subscribe(events=events), None)


def test_a_secret_in_clear_text_never_reaches_the_log() -> None:
    with pytest.raises(InvalidInput, match="encrypted"):
        w.decide_subscription(subscribe(secret_ciphertext="whsec_plain"), None)
    state = given_subscription(*w.decide_subscription(subscribe(), None))
    with pytest.raises(InvalidInput, match="encrypted"):
        w.decide_subscription(w.RotateSecret("s1", "whsec_plain"), state)


def test_unsubscribe_and_rotate() -> None:
    state = given_subscription(*w.decide_subscription(subscribe(), None))
    (rotated,) = w.decide_subscription(w.RotateSecret("s1", "gAAAAAnew"), state)
    state = given_subscription(*w.decide_subscription(subscribe(), None), rotated)
    assert state is not None and state.secret_ciphertext == "gAAAAAnew"
    assert w.decide_subscription(w.RotateSecret("s1", "gAAAAAnew"), state) == ()
    (removed,) = w.decide_subscription(w.Unsubscribe("s1", "done"), state)
    state = w.evolve_subscription(state, removed)
    assert not state.active and not state.wants("acme", "risk", "feature.approved")
    assert w.decide_subscription(w.Unsubscribe("s1"), state) == ()
    with pytest.raises(InvalidTransition):
        w.decide_subscription(w.RotateSecret("s1", "gAAAAAother"), state)
    with pytest.raises(UnknownAggregate):
        w.decide_subscription(w.Unsubscribe("nope"), None)


def test_wants_only_its_tenant_project_and_events() -> None:
    state = given_subscription(*w.decide_subscription(subscribe(), None))
    assert state is not None
    assert state.wants("acme", "risk", "feature.approved")
    assert not state.wants("globex", "risk", "feature.approved")
    assert not state.wants("acme", "other", "feature.approved")
    assert not state.wants("acme", "risk", "job.started")


# --------------------------------------------------------------- deliveries


def test_queue_once_with_a_json_body_of_that_event() -> None:
    command = w.QueueDelivery("d1", "s1", "feature.approved", "e1", BODY, T0)
    assert w.decide_delivery(command, None) == (QUEUED,)
    assert w.decide_delivery(command, given_delivery(QUEUED)) == ()
    for body, says in (("not json", "JSON"), ('{"event":"job.failed"}', "feature.approved"), ("[1]", "object")):
        with pytest.raises(InvalidInput, match=says):
            w.decide_delivery(w.QueueDelivery("d2", "s1", "feature.approved", "e1", body, T0), None)
    with pytest.raises(InvalidInput, match="not a webhook event"):
        w.decide_delivery(w.QueueDelivery("d2", "s1", "job.exploded", "e1", BODY, T0), None)
    with pytest.raises(InvalidInput, match="timezone"):
        w.decide_delivery(w.QueueDelivery("d2", "s1", "feature.approved", "e1", BODY, T0.replace(tzinfo=None)), None)


def test_the_first_attempt_is_claimed_and_a_second_claim_is_a_repeat() -> None:
    state = given_delivery(QUEUED)
    (claim,) = w.decide_delivery(w.StartAttempt("d1", T0, 10.0, POLICY), state)
    assert claim == started(1)
    state = given_delivery(QUEUED, claim)
    assert state is not None and state.status == "sending" and not state.due(T0 + timedelta(seconds=9))
    assert w.decide_delivery(w.StartAttempt("d1", T0 + timedelta(seconds=1), 10.0, POLICY), state) == ()


def test_an_accepted_attempt_delivers() -> None:
    state = given_delivery(QUEUED, started(1))
    assert w.decide_delivery(record(1, 204), state) == (w.WebhookDelivered("d1", 1, 204, 12.5),)
    done = given_delivery(QUEUED, started(1), w.WebhookDelivered("d1", 1, 204, 12.5))
    assert done is not None and done.terminal and not done.due(T0 + timedelta(days=1))
    assert w.decide_delivery(record(1, 204), done) == ()
    assert w.decide_delivery(w.StartAttempt("d1", T0, 10.0, POLICY), done) == ()


def test_failures_back_off_exponentially_then_abandon() -> None:
    history: list[w.DeliveryEvent] = [QUEUED]
    at = T0
    waits = []
    for attempt in (1, 2, 3):
        state = given_delivery(*history)
        assert state is not None
        (claim,) = w.decide_delivery(w.StartAttempt("d1", at, 10.0, POLICY), state)
        assert isinstance(claim, w.WebhookAttemptStarted) and claim.attempt == attempt
        history.append(claim)
        outcome = w.decide_delivery(record(attempt, 500, at), given_delivery(*history))
        history.extend(outcome)
        failed = outcome[0]
        assert isinstance(failed, w.WebhookAttemptFailed) and failed.status_code == 500 and failed.error == "boom"
        if failed.next_attempt_at is not None:
            nxt = datetime.fromisoformat(failed.next_attempt_at)
            waits.append((nxt - at).total_seconds())
            state = given_delivery(*history)
            assert state is not None and not state.due(nxt - timedelta(milliseconds=1)) and state.due(nxt)
            with pytest.raises(InvalidTransition, match="not due"):
                w.decide_delivery(w.StartAttempt("d1", at, 10.0, POLICY), state)
            at = nxt
    assert waits == [1.0, 2.0]  # jitter 0.5 is the middle of the +-20% band
    assert isinstance(history[-1], w.WebhookAbandoned) and history[-1].attempts == 3
    assert "gave up after 3" in history[-1].reason
    assert given_delivery(*history).status == "abandoned"  # type: ignore[union-attr]


def test_backoff_is_capped_and_jittered() -> None:
    assert [w.backoff_seconds(n, POLICY, 0.5) for n in (1, 2, 3, 4, 10, 1000)] == [1, 2, 4, 4, 4, 4]
    assert w.backoff_seconds(1, POLICY, 0.0) == pytest.approx(0.8)
    assert w.backoff_seconds(1, POLICY, 1.0) == pytest.approx(1.2)


def test_a_lost_attempt_fails_once_its_lease_has_passed_and_the_next_one_starts() -> None:
    state = given_delivery(QUEUED, started(1, lease=10))
    later = T0 + timedelta(seconds=11)
    assert state is not None and state.due(later)
    lost, claim = w.decide_delivery(w.StartAttempt("d1", later, 10.0, POLICY), state)
    assert isinstance(lost, w.WebhookAttemptFailed) and lost.attempt == 1 and lost.error == w.LOST_ATTEMPT
    assert claim == started(2, later)
    # the slow sender's outcome for attempt 1 arrives after all: it no longer counts
    state = given_delivery(QUEUED, started(1, lease=10), lost, claim)
    assert w.decide_delivery(record(1, 200, later), state) == ()


def test_a_lost_last_attempt_abandons() -> None:
    state = given_delivery(QUEUED, started(3, lease=10))
    lost, abandoned = w.decide_delivery(w.StartAttempt("d1", T0 + timedelta(seconds=11), 10.0, POLICY), state)
    assert isinstance(lost, w.WebhookAttemptFailed) and lost.next_attempt_at is None
    assert isinstance(abandoned, w.WebhookAbandoned) and abandoned.attempts == 3


def test_abandon_and_bad_outcomes() -> None:
    state = given_delivery(QUEUED, started(1))
    assert w.decide_delivery(w.AbandonDelivery("d1", "removed"), state) == (w.WebhookAbandoned("d1", 1, "removed"),)
    with pytest.raises(InvalidInput, match="status_code"):
        w.decide_delivery(record(1, 42), state)
    with pytest.raises(InvalidInput, match="jitter"):
        w.decide_delivery(record(1, 500, jitter=2.0), state)
    with pytest.raises(UnknownAggregate):
        w.decide_delivery(w.StartAttempt("zz", T0, 10.0, POLICY), None)
    with pytest.raises(InvalidInput, match="max_attempts"):
        w.decide_delivery(w.StartAttempt("d1", T0, 10.0, w.RetryPolicy(0, 1.0, 2.0)), given_delivery(QUEUED))
    # a refused connection has no status; the error says what happened
    failed = w.decide_delivery(w.RecordAttempt("d1", 1, T0, None, "refused", 1.0, POLICY, 0.5), state)[0]
    assert isinstance(failed, w.WebhookAttemptFailed) and failed.status_code is None and failed.error == "refused"


def test_payload_is_canonical_json() -> None:
    text = w.payload("job.failed", "2026-01-01T00:00:00+00:00", {"z": 1, "a": "é"})
    assert text == '{"data":{"a":"\\u00e9","z":1},"event":"job.failed","timestamp":"2026-01-01T00:00:00+00:00"}'
    assert json.loads(text)["data"]["a"] == "é"
    with pytest.raises(ValueError):
        w.payload("job.failed", "t", {"lift": float("nan")})
