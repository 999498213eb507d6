"""Job aggregate: given events, when a command, then events (or a typed error)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain import job
from domain.errors import InvalidInput, InvalidTransition, UnknownAggregate

REQUEST = job.RequestJob("j", "p", "d.csv", None, "y", "auto", 60.0, 0, 3, 100)


def given(*events: object) -> job.Job | None:
    state = None
    for event in events:
        state = job.evolve(state, event)  # type: ignore[arg-type]
    return state


def requested() -> job.JobRequested:
    return job.decide(REQUEST, None)[0]  # type: ignore[return-value]


def schema(attempt: int = 1) -> job.SchemaAnalyzed:
    return job.SchemaAnalyzed("j", attempt, "p.parquet", "abc", 10, 3, "classification", "roc_auc", "1", "{}", (), ())


def research(attempt: int = 1) -> job.DomainResearched:
    return job.DomainResearched("j", attempt, ("credit",), "{}", ("https://example.org",))


def test_request_then_repeat_is_a_noop() -> None:
    assert job.decide(REQUEST, None) == (requested(),)
    assert job.decide(REQUEST, given(requested())) == ()


def test_same_id_other_settings_is_rejected() -> None:
    other = job.RequestJob("j", "p", "other.csv", None, "y", "auto", 60.0, 0, 3, 100)
    with pytest.raises(InvalidTransition, match="new job id"):
        job.decide(other, given(requested()))


def test_command_on_unknown_job_says_what_to_do() -> None:
    with pytest.raises(UnknownAggregate, match="afep jobs list"):
        job.decide(job.CancelJob("j", "x"), None)


def test_stages_in_order_and_repeats_are_noops() -> None:
    state = given(requested(), schema(), research())
    assert state is not None and state.status == "running" and state.stage == "ideation"
    started = job.decide(job.StartRound("j", 1, "kb", 50), state)
    assert started == (job.RoundStarted("j", 1, 1, "kb", 50),)
    state = given(requested(), schema(), research(), *started)
    assert job.decide(job.StartRound("j", 1, "kb", 50), state) == ()
    done = job.decide(job.CompleteStage("j", 1, "ideation", ("f1", "f2"), 2, 0), state)
    state = given(requested(), schema(), research(), *started, *done)
    assert state is not None and state.feature_ids == ("f1", "f2") and state.stage == "codegen"
    assert job.decide(job.CompleteStage("j", 1, "ideation", ("f1", "f2"), 2, 0), state) == ()


def test_research_before_schema_is_invalid() -> None:
    with pytest.raises(InvalidTransition, match="schema analysis first"):
        job.decide(job.RecordDomainResearch("j", 1, (), "{}", ()), given(requested()))


def test_round_before_research_is_invalid() -> None:
    with pytest.raises(InvalidTransition):
        job.decide(job.StartRound("j", 1, "kb", 5), given(requested(), schema()))


def test_cancel_drops_late_agent_results_and_retry_restarts() -> None:
    cancelled = given(requested(), schema(), job.JobCancelled("j", "user"))
    assert cancelled is not None and cancelled.terminal
    assert job.decide(job.RecordDomainResearch("j", 1, (), "{}", ()), cancelled) == ()
    assert job.decide(job.CancelJob("j", "again"), cancelled) == ()
    retried = job.decide(job.RetryJob("j"), cancelled)
    assert retried == (job.JobRetried("j", 2),)
    state = given(requested(), schema(), job.JobCancelled("j", "user"), *retried)
    assert state is not None and state.status == "requested" and state.schema is None
    assert job.decide(job.RecordSchemaAnalysis(**{**vars(schema(1))}), state) == ()  # stale attempt
    assert job.decide(job.RecordSchemaAnalysis(**{**vars(schema(2))}), state) == (schema(2),)


def test_retry_of_a_running_job_is_invalid() -> None:
    with pytest.raises(InvalidTransition, match="only failed or cancelled"):
        job.decide(job.RetryJob("j"), given(requested()))


def test_completed_job_cannot_be_cancelled() -> None:
    done = given(requested(), job.JobCompleted("j", (), "roc_auc", 0.5, 0.6, "{}"))
    with pytest.raises(InvalidTransition, match="already completed"):
        job.decide(job.CancelJob("j", "late"), done)
    assert job.decide(job.FailJob("j", "late", "x"), done) == ()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"target": "Sta\x00tus"}, "target contains the control character '.x00' at offset 3"),
        ({"target": "a\nb"}, "target contains the control character"),
        ({"target": "t" * 5_000_000}, "target is 5,000,000 characters long; the limit is 1,024"),
        ({"target": ""}, "target must not be empty"),
        ({"table": "x\x1b[31m"}, "table contains the control character"),
        ({"source": "d.csv\x00.txt"}, "source contains the control character"),
        ({"source": "s" * 5000}, "source is 5,000 characters long"),
        ({"job_id": "j" * 1_000_000}, "job_id must be 1-128 letters"),
        ({"job_id": "../etc"}, "job_id must be 1-128 letters"),
        ({"project_id": "p\x00"}, "project_id must be 1-128 letters"),
        ({"task": "multiclass"}, "task must be one of auto, classification, regression"),
        ({"budget_seconds": float("inf")}, "budget_seconds must be a finite number"),
        ({"budget_seconds": float("nan")}, "budget_seconds must be a finite number"),
        ({"budget_seconds": 0.0}, "budget_seconds must be a finite number in \\(0"),
        ({"budget_seconds": 8 * 24 * 3600.0}, "budget_seconds must be a finite number"),
        ({"seed": -1}, "seed must be"),
        ({"max_rounds": 0}, "max_rounds must be"),
        ({"max_candidates": 10**9}, "max_candidates must be"),
    ],
)
def test_a_request_that_could_poison_the_log_is_refused(change: dict[str, object], complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        job.decide(replace(REQUEST, **change), None)  # type: ignore[arg-type]


def test_free_text_allows_newlines_but_not_nul() -> None:
    running = given(requested())
    assert job.decide(job.CancelJob("j", "line one\nline two\twith tab"), running)
    with pytest.raises(InvalidInput, match="reason contains the control character"):
        job.decide(job.CancelJob("j", "stop\x00"), running)
    with pytest.raises(InvalidInput, match="reason is 70,000 characters long"):
        job.decide(job.CancelJob("j", "x" * 70_000), running)


def test_a_failure_is_always_recorded_with_its_reason_cleaned() -> None:
    (failed,) = job.decide(job.FailJob("j", "KeyError: 'Sta\x00tus'", "schema"), given(requested()))
    assert isinstance(failed, job.JobFailed) and failed.reason == "KeyError: 'Sta\ufffdtus'"
