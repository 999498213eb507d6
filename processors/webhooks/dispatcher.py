"""The webhook dispatcher: sends due deliveries, recording every attempt as an event.

It follows the log (`book.py`), so on start it knows every delivery still pending, whoever
queued it and whenever. An attempt is claimed first (`StartAttempt` appends
WebhookAttemptStarted with a lease of twice the timeout plus 5 s; a dispatcher that loses the
race appends nothing and moves on), then the signed body is POSTed, then the outcome is
recorded (`RecordAttempt`: delivered, or failed with the next attempt's time, or abandoned).
A process that stops mid-request leaves a claim without outcome; once its lease has passed, the
next `StartAttempt` records that attempt as failed and starts the next one. So delivery is
at least once per attempt number, and a receiver deduplicates by the X-AFEP-Delivery header.

Requests run on `senders` threads, at most one per subscription at a time (a receiver that
hangs holds one thread, not all), off the agents' thread: a slow receiver never delays a job.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Protocol

from commands.store import EventStore
from commands.unit_of_work import execute
from domain import webhook
from domain.envelope import Context, Envelope
from domain.errors import DomainError
from processors.webhooks.book import DeliveryBook, Pending, SubscriptionIndex
from processors.webhooks.sender import Outcome
from processors.webhooks.signing import UndecryptableSecret, decrypt_secret, headers, signed_body

log = logging.getLogger("afep.webhooks")
ACTOR = "agent:webhooks"
REMOVED = "the webhook was removed before this delivery was sent"


class Sender(Protocol):
    def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        store: EventStore,
        sender: Sender,
        *,
        server_secrets: Sequence[str],
        policy: webhook.RetryPolicy,
        timeout_seconds: float,
        senders: int = 4,
        poll_seconds: float = 0.5,
        clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        policy.check()
        self.store = store
        self.sender = sender
        self.server_secrets = list(server_secrets)
        self.policy = policy
        self.lease_seconds = 2 * timeout_seconds + 5
        self.senders = senders
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.jitter = jitter
        self.subscriptions = SubscriptionIndex()
        self.book = DeliveryBook()
        self._busy: set[str] = set()  # subscriptions with a request in flight from this process
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------ one pass

    def refresh(self) -> None:
        self.subscriptions.refresh(self.store)
        self.book.refresh(self.store)

    def due(self) -> list[Pending]:
        """The deliveries to attempt now: at most one per subscription, none already in flight here."""
        self.refresh()
        chosen: dict[str, Pending] = {}
        with self._lock:
            for pending in self.book.due(self.clock()):
                if pending.subscription_id not in self._busy and pending.subscription_id not in chosen:
                    chosen[pending.subscription_id] = pending
        return list(chosen.values())

    def attempt(self, pending: Pending) -> str:
        """One attempt at one delivery, claimed and recorded. Returns what happened (for logs and tests)."""
        delivery = pending.delivery
        subscription = self.subscriptions.get(pending.subscription_id)
        if subscription is None or not subscription.active:
            self._record(pending, webhook.AbandonDelivery(delivery.delivery_id, REMOVED))
            return "abandoned"
        if subscription.subscribed.tenant_id != pending.tenant_id:
            reason = f"tenant {pending.tenant_id} does not own webhook {subscription.subscription_id}"
            self._record(pending, webhook.AbandonDelivery(delivery.delivery_id, reason))
            return "abandoned"
        try:
            claimed = self._record(
                pending, webhook.StartAttempt(delivery.delivery_id, self.clock(), self.lease_seconds, self.policy)
            )
        except DomainError as error:  # not due after all (another process's clock), or gone
            log.info("webhook delivery %s not attempted: %s", delivery.delivery_id, error)
            return "skipped"
        started = next((e.event for e in claimed if isinstance(e.event, webhook.WebhookAttemptStarted)), None)
        if started is None:
            return "taken"  # another dispatcher holds the attempt, or the lost one was the last
        outcome = self._send(subscription, delivery, started.attempt)
        self._record(
            pending,
            webhook.RecordAttempt(
                delivery.delivery_id,
                started.attempt,
                self.clock(),
                outcome.status_code if outcome.status_code is None or 100 <= outcome.status_code <= 999 else None,
                outcome.error,
                max(outcome.duration_ms, 0.0),
                self.policy,
                min(max(self.jitter(), 0.0), 1.0),
            ),
        )
        return "delivered" if outcome.accepted else "failed"

    def _send(self, subscription: webhook.Subscription, delivery: webhook.Delivery, attempt: int) -> Outcome:
        try:
            secret = decrypt_secret(subscription.secret_ciphertext, self.server_secrets, subscription.subscription_id)
        except UndecryptableSecret as error:
            return Outcome(None, str(error), 0.0)
        body = signed_body(delivery.queued.body, secret)
        sent = headers(
            body,
            secret,
            event=delivery.queued.event,
            delivery_id=delivery.delivery_id,
            attempt=attempt,
            sent_at=time.time(),
        )
        try:
            return self.sender.send(subscription.subscribed.url, body, sent)
        except Exception as error:  # a sender bug is a failed attempt, not a dead dispatcher
            log.exception("webhook sender failed on delivery %s", delivery.delivery_id)
            return Outcome(None, f"the sender failed: {type(error).__name__}: {error}", 0.0)

    def _record(self, pending: Pending, command: object) -> list[Envelope]:
        ctx = Context(
            at=self.clock(),
            actor=ACTOR,
            tenant_id=pending.tenant_id,
            correlation_id=pending.correlation_id,
            causation_id=pending.queued_event_id,
        )
        return execute(self.store, [(command, ctx)])

    def run_until_idle(self, *, timeout: float = 30.0) -> None:
        """Attempt everything due, on this thread, until nothing is due now (tests and one-off runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.due()
            if not batch:
                return
            for pending in batch:
                self.attempt(pending)

    # ----------------------------------------------------------- background

    def start(self) -> None:
        """Send in the background: one thread decides what is due, `senders` threads send."""
        self._pool = ThreadPoolExecutor(max_workers=self.senders, thread_name_prefix="afep-webhook")
        self._thread = threading.Thread(target=self._loop, name="afep-webhooks", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for pending in self.due():
                    with self._lock:
                        if len(self._busy) >= self.senders:
                            break
                        self._busy.add(pending.subscription_id)
                    assert self._pool is not None
                    self._pool.submit(self._attempt_in_pool, pending)
            except Exception:
                log.exception("webhook dispatch pass failed; retrying")
            self._wake.wait(self._sleep_seconds())
            self._wake.clear()

    def _attempt_in_pool(self, pending: Pending) -> None:
        try:
            if not self._stop.is_set():
                log.debug("webhook delivery %s: %s", pending.delivery.delivery_id, self.attempt(pending))
        except Exception:
            log.exception("webhook delivery %s failed to record; it is retried", pending.delivery.delivery_id)
        finally:
            with self._lock:
                self._busy.discard(pending.subscription_id)
            self._wake.set()

    def _sleep_seconds(self) -> float:
        wake = self.book.next_wake()
        if wake is None:
            return self.poll_seconds
        until = (wake - self.clock()) / timedelta(seconds=1)
        return min(self.poll_seconds, max(until, 0.01))

    def wake(self) -> None:
        self._wake.set()

    def observe(self, recorded: Sequence[Envelope]) -> None:
        """A runtime observer: wake at once when deliveries were queued."""
        if any(isinstance(e.event, webhook.WebhookQueued) for e in recorded):
            self._wake.set()

    def stop(self) -> None:
        """Stop choosing; requests in flight finish (each within its timeout) and are recorded."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
