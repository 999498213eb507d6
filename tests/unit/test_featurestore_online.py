"""The TTL rule of online reads (processors/featurestore/online.py), without Feast: Feast leaves the
view's TTL to the online store, so the reader applies it. End to end: tests/integration/test_featurestore_ttl.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from processors.featurestore.online import OnlineRead, age_text, expired_age

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DAY = 86400


def test_a_value_expires_once_it_is_older_than_the_ttl() -> None:
    assert expired_age(AT, 7 * DAY, AT + timedelta(days=7)) is None  # exactly the TTL old: still served
    assert expired_age(AT, 7 * DAY, AT + timedelta(days=7, seconds=1)) == 7 * DAY + 1
    assert expired_age(AT, 7 * DAY, AT + timedelta(days=1)) is None
    assert expired_age(None, 7 * DAY, AT + timedelta(days=30)) is None  # no value: missing, not expired


def test_a_zero_ttl_never_expires() -> None:
    assert expired_age(AT, 0, AT + timedelta(days=3650)) is None


def test_ages_read_in_the_largest_units() -> None:
    assert [age_text(s) for s in (30, 60, 150, 3600, 3660, DAY, DAY + 7200, 8 * DAY + 59)] == [
        "30s",
        "1m",
        "2m",
        "1h",
        "1h 1m",
        "1d",
        "1d 2h",
        "8d",
    ]


def test_expired_keys_are_marked_in_the_read_and_the_note_says_what_to_do() -> None:
    values: list[dict[str, Any]] = [
        {"entity": 1, "value": None, "expired": True, "age_seconds": 8 * DAY + 3 * 3600},
        {"entity": 2, "value": 0.5},
        {"entity": 3, "value": None},
    ]
    read = OnlineRead("f1", "loans_features", 2, "cid", "dti", 7 * DAY, values)
    body = read.as_dict()
    assert body["ttl_seconds"] == 7 * DAY and body["values"] == values
    assert read.expired_note() == (
        "— value expired for 1: materialized 8d 3h ago, past view loans_features's TTL of 7d; "
        "`afep features sync f1` materializes it again"
    )
    fresh = OnlineRead("f1", "loans_features", 2, "cid", "dti", 7 * DAY, values[1:])
    assert fresh.expired_note() is None
