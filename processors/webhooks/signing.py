"""Webhook secrets and signatures.

A subscription's secret (`whsec_` and 32 random bytes, URL-safe base64) is generated when the
subscription is created, returned once, and recorded only as Fernet ciphertext under a key
derived from the deployment secret (AFEP_SECRET_KEY; previous ones in AFEP_SECRET_KEYS_OLD still
decrypt) with its own derivation, apart from connection credentials and JWTs. The HMAC key is
the secret's UTF-8 text.

What a receiver gets for a delivery whose stored payload is P (canonical JSON of `event`,
`timestamp` and `data`, see `domain.webhook.payload`):

    body               P with a last member "signature": "sha256=" + hex HMAC-SHA256(secret, P)
    X-AFEP-Signature   sha256=<hex HMAC-SHA256(secret, body)>, over the raw body bytes as sent
    X-AFEP-Timestamp   Unix seconds when this attempt was sent (not signed: the body's signed
                       `timestamp` is when the event happened)
    X-AFEP-Event       the event name;  X-AFEP-Delivery: the delivery id, the same on every
                       attempt (deduplicate by it);  X-AFEP-Attempt: 1, 2, …

A signature cannot sign the body it is part of, so there are two, both under the same secret.
The header signs every byte the receiver gets: verify it on the raw body before parsing
(`verify`). The body's `signature` member is the seed's format (§11.4): it signs the body
without that member, which is P; a receiver that only has the parsed JSON removes the member
and re-serialises canonically (sorted keys, separators "," and ":", ASCII escapes), or cuts
the raw body at its last `,"signature":` and closes it with `}` (`verify_body_field`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as random_secrets
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-AFEP-Signature"
TIMESTAMP_HEADER = "X-AFEP-Timestamp"
EVENT_HEADER = "X-AFEP-Event"
DELIVERY_HEADER = "X-AFEP-Delivery"
ATTEMPT_HEADER = "X-AFEP-Attempt"
USER_AGENT = "AFEP-Webhooks/1"
_MEMBER = ',"signature":'


class UndecryptableSecret(ValueError):
    """The subscription's secret was encrypted under a deployment secret this process does not have."""

    def __init__(self, subscription_id: str) -> None:
        super().__init__(
            f"the secret of webhook {subscription_id!r} was encrypted with a deployment secret this process does "
            "not have; set AFEP_SECRET_KEYS_OLD to the previous AFEP_SECRET_KEY, or rotate the webhook's secret"
        )


def new_secret() -> str:
    return SECRET_PREFIX + random_secrets.token_urlsafe(32)


def _fernet(server_secret: str) -> Fernet:
    digest = hashlib.sha256(b"afep/webhook-secrets/v1\0" + server_secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def cipher(server_secrets: str | Sequence[str]) -> MultiFernet:
    """The current deployment secret first (it encrypts), then previous ones (they still decrypt)."""
    keys = [server_secrets] if isinstance(server_secrets, str) else [k for k in server_secrets if k]
    if not keys:
        raise ValueError("webhook secrets are stored encrypted; set AFEP_SECRET_KEY")
    return MultiFernet([_fernet(k) for k in keys])


def encrypt_secret(secret: str, server_secrets: str | Sequence[str]) -> str:
    return cipher(server_secrets).encrypt(secret.encode()).decode()


def decrypt_secret(ciphertext: str, server_secrets: str | Sequence[str], subscription_id: str) -> str:
    try:
        return cipher(server_secrets).decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError):
        raise UndecryptableSecret(subscription_id) from None


def signature(secret: str, data: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def signed_body(payload: str, secret: str) -> bytes:
    """The bytes sent: `payload` (a JSON object) with the `signature` member of the seed's format last."""
    if not payload.endswith("}") or payload == "{}":
        raise ValueError("a webhook payload is a non-empty JSON object")
    member = json.dumps(signature(secret, payload.encode()))
    return (payload[:-1] + _MEMBER + member + "}").encode()


def headers(body: bytes, secret: str, *, event: str, delivery_id: str, attempt: int, sent_at: float) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(secret, body),
        TIMESTAMP_HEADER: str(int(sent_at)),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        ATTEMPT_HEADER: str(attempt),
    }


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does with `X-AFEP-Signature`: compare in constant time over the raw body."""
    return hmac.compare_digest(signature(secret, body), header)


def verify_body_field(secret: str, body: bytes) -> bool:
    """What a receiver does with the body's `signature` member: it signs the body without itself."""
    text = body.decode()
    cut = text.rfind(_MEMBER)
    if cut < 0:
        return False
    claimed = json.loads(text)["signature"]
    return isinstance(claimed, str) and hmac.compare_digest(signature(secret, (text[:cut] + "}").encode()), claimed)
