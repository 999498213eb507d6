"""The hostile-tenant harness itself: both backends serve, and tenants are apart."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.clickhouse


def test_each_tenant_sees_only_its_own_projects(hostile: Any) -> None:
    with hostile() as api:
        alice, mallory = api.client("alice"), api.client("mallory")
        api.project(alice, "secret-project")
        assert alice.get("/projects/secret-project").status_code == 200
        assert mallory.get("/projects/secret-project").status_code == 404
        assert [p["id"] for p in mallory.get("/projects").json()["items"]] == []
