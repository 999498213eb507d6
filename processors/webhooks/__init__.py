"""Outbound webhooks: who hears about what, the signed body, and the sender that delivers it.

- `signing.py`: subscription secrets (generated, shown once, stored encrypted) and the signature.
- `payloads.py`: the body's `data` for each supported event, built from the log.
- `book.py`: the subscriptions and pending deliveries, folded from the log and kept up to date.
- `targets.py`: which receiver addresses may be reached (no loopback/private ones unless allowed).
- `sender.py`: one HTTP POST with a timeout; `dispatcher.py`: sends due deliveries on a few
  threads, each attempt claimed and recorded as an event, so delivery survives a restart.

The agent that queues deliveries is `processors/agents/webhooks.py`; the domain rules are in
`domain/webhook.py`.
"""
