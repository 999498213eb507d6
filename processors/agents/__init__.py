"""The agents. Each module: NAME, SUBSCRIBES (the events it reacts to) and `react`.

Where an event is handled:
  JobRequested, JobRetried            -> schema
  SchemaAnalyzed                      -> research
  DomainResearched, RoundCompleted    -> planner
  RoundStarted                        -> ideation
  StageCompleted(ideation)            -> codegen
  StageCompleted(codegen)             -> execution
  StageCompleted(execution)           -> evaluation
Where it is decided: domain/job.py and domain/feature.py (`decide`).
"""

from __future__ import annotations

from processors.agents import codegen, evaluation, execution, ideation, planner, research, schema

AGENTS = (schema, research, planner, ideation, codegen, execution, evaluation)
