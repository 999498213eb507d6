"""Webhook secrets, signatures and target checks (processors/webhooks/signing.py, targets.py)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from domain.webhook import payload
from processors.webhooks import signing
from processors.webhooks.targets import TargetRefused, check_resolved, check_url_host

SECRET = "whsec_test-secret"
PAYLOAD = payload("feature.approved", "2026-01-01T00:00:00+00:00", {"feature_id": "f1", "feast_feature_view": None})


def test_the_header_signs_the_raw_body_and_the_field_signs_the_body_without_itself() -> None:
    body = signing.signed_body(PAYLOAD, SECRET)
    parsed = json.loads(body)
    assert list(parsed) == ["data", "event", "timestamp", "signature"]
    header = signing.headers(body, SECRET, event="feature.approved", delivery_id="d1", attempt=2, sent_at=1.9)
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert header[signing.SIGNATURE_HEADER] == expected
    assert header[signing.TIMESTAMP_HEADER] == "1" and header[signing.ATTEMPT_HEADER] == "2"
    assert signing.verify(SECRET, body, expected)
    assert not signing.verify("whsec_other", body, expected)
    assert not signing.verify(SECRET, body.replace(b"f1", b"f2"), expected)
    # the seed's `signature` member: HMAC of the canonical body without it, which a receiver can rebuild
    without = {k: v for k, v in parsed.items() if k != "signature"}
    canonical = json.dumps(without, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert parsed["signature"] == "sha256=" + hmac.new(SECRET.encode(), canonical, hashlib.sha256).hexdigest()
    assert signing.verify_body_field(SECRET, body)
    assert not signing.verify_body_field("whsec_other", body)
    assert not signing.verify_body_field(SECRET, body.replace(b'"f1"', b'"f9"'))


def test_secrets_are_random_encrypted_and_decrypt_with_an_old_server_key_too() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first != second and first.startswith("whsec_") and len(first) > 40
    token = signing.encrypt_secret(first, ["old-server-key"])
    assert first not in token and token.startswith("gAAAAA")
    assert signing.decrypt_secret(token, ["new-server-key", "old-server-key"], "s1") == first
    with pytest.raises(signing.UndecryptableSecret, match="AFEP_SECRET_KEYS_OLD"):
        signing.decrypt_secret(token, ["new-server-key"], "s1")
    with pytest.raises(ValueError, match="AFEP_SECRET_KEY"):
        signing.encrypt_secret(first, [])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://api.localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://100.64.0.1/x",
        "http://0.0.0.0/x",
    ],
)
def test_internal_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(TargetRefused, match="AFEP_WEBHOOK_PRIVATE_TARGETS"):
        check_url_host(url, allow_private=False)
    with pytest.raises(TargetRefused):
        check_resolved(url, allow_private=False)
    check_url_host(url, allow_private=True)
    check_resolved(url, allow_private=True)


def test_public_literals_pass_and_names_are_checked_when_sent() -> None:
    check_url_host("https://93.184.216.34/hook", allow_private=False)
    check_url_host("https://hooks.example.com/x", allow_private=False)  # resolved only when sending


def test_a_name_that_resolves_to_loopback_is_refused_when_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def resolve(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    check_url_host("https://rebind.example.com/x", allow_private=False)
    with pytest.raises(TargetRefused, match=r"resolves to 127\.0\.0\.1"):
        check_resolved("https://rebind.example.com/x", allow_private=False)
