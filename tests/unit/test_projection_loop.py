"""The API's projection loop stops when the lifespan cancels it, whenever the cancellation comes.

With `asyncio.wait_for` (Python 3.11) a cancellation that arrived just after the loop's event was
set was swallowed, the loop went on, and the server's shutdown waited for it forever (a fuzz test's
lifespan teardown hung for 600 s in CI).
"""

from __future__ import annotations

import asyncio
import types

import pytest

from gateway.bootstrap import Services


def _stub() -> types.SimpleNamespace:
    idle = types.SimpleNamespace(catch_up=lambda: None)
    return types.SimpleNamespace(
        projections_due=asyncio.Event(),
        outbox_seconds=1.0,
        db=None,
        projector=idle,
        events_projection=idle,
        audit=types.SimpleNamespace(drain=lambda db: 0),
    )


@pytest.mark.parametrize("ticks_after_the_event", [0, 1, 2, 3])
def test_a_cancellation_right_after_the_event_is_set_stops_the_loop(ticks_after_the_event: int) -> None:
    async def cancelled() -> bool:
        stub = _stub()
        task = asyncio.create_task(Services.run_projections(stub))  # type: ignore[arg-type]
        for _ in range(3):
            await asyncio.sleep(0)
        stub.projections_due.set()
        for _ in range(ticks_after_the_event):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except asyncio.CancelledError:
            return True
        except TimeoutError:
            task.cancel()
            return False
        return False

    assert asyncio.run(cancelled()), "the projection loop went on after it was cancelled"
