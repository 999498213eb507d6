"""Feature aggregate lifecycle."""

from __future__ import annotations

import pytest

from domain import feature as f
from domain.errors import ConflictingCommand, InvalidTransition

PROPOSE = f.ProposeFeature("f", "j", 1, "dti", "debt / income", "why", "{}", ("debt", "income"), 0.8, "kb", ())


def run(*commands: object) -> tuple[f.Feature | None, list[object]]:
    state: f.Feature | None = None
    events: list[object] = []
    for command in commands:
        new = f.decide(command, state)  # type: ignore[arg-type]
        for event in new:
            state = f.evolve(state, event)
        events.extend(new)
    return state, events


CODE = f.RecordCode("f", "code", "polars", "h", None, None, False)
OK = f.RecordExecution("f", True, None, None, 3.0, "a.npy", 0.0, 10)
EVAL = f.RecordEvaluation("f", 1, "confirm", "roc_auc", 0.01, 0.004, 0.001, 0.007, 0.01, 1, "helps")


def test_happy_path_to_approval() -> None:
    state, events = run(PROPOSE, CODE, OK, EVAL, f.SelectFeature("f", 1, "helps"), f.ApproveFeature("f", "ok"))
    assert [type(e).__name__ for e in events] == [
        "FeatureProposed",
        "CodeGenerated",
        "CodeExecuted",
        "FeatureEvaluated",
        "FeatureSelected",
        "FeatureApproved",
    ]
    assert state is not None and state.status == "approved" and state.job_id == "j"


def test_repeated_commands_are_noops() -> None:
    _, events = run(PROPOSE, PROPOSE, CODE, CODE, OK, OK, EVAL, EVAL)
    assert len(events) == 4


def test_reproposing_other_content_conflicts() -> None:
    other = f.ProposeFeature("f", "j", 1, "dti2", "x", "y", "{}", ("a",), 0.1, "kb", ())
    with pytest.raises(ConflictingCommand):
        run(PROPOSE, other)


def test_approval_needs_selection() -> None:
    with pytest.raises(InvalidTransition, match="only selected features can be approved"):
        run(PROPOSE, CODE, OK, EVAL, f.ApproveFeature("f"))


def test_failed_execution_cannot_be_evaluated_but_can_be_rejected() -> None:
    failed = f.RecordExecution("f", False, "timed out", "timeout", 30000.0, None, None, None)
    with pytest.raises(InvalidTransition):
        run(PROPOSE, CODE, failed, EVAL)
    state, _ = run(PROPOSE, CODE, failed, f.RejectFeature("f", "execution", "timed out"))
    assert state is not None and state.status == "rejected"


def test_deprecate_only_selected_or_approved() -> None:
    with pytest.raises(InvalidTransition):
        run(PROPOSE, f.DeprecateFeature("f", "old"))
    state, _ = run(PROPOSE, CODE, OK, EVAL, f.SelectFeature("f", 1, "x"), f.DeprecateFeature("f", "old"))
    assert state is not None and state.status == "deprecated"
