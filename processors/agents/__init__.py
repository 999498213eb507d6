"""The agents. Each module: NAME, SUBSCRIBES (the events it reacts to) and `react`.

Where an event is handled:
  JobRequested, JobRetried            -> schema
  SchemaAnalyzed                      -> research
  DomainResearched, RoundCompleted    -> planner
  RoundStarted                        -> ideation (and evaluation: round 1 fits its baseline
                                         in the background meanwhile)
  StageCompleted(ideation)            -> codegen
  StageCompleted(codegen)             -> execution
  StageCompleted(execution)           -> evaluation
  JobCompleted                        -> knowledge (accepted web research extends the knowledge base)
Where it is decided: domain/job.py and domain/feature.py (`decide`).
"""

from __future__ import annotations

from processors.agents import codegen, evaluation, execution, ideation, knowledge, planner, research, schema

# The local runtime gives each agent its new events in this order, pass after pass:
# evaluation sees RoundStarted before ideation, so its background baseline fits start
# before the round's candidates are proposed, generated and executed.
AGENTS = (schema, research, planner, evaluation, ideation, codegen, execution, knowledge)
