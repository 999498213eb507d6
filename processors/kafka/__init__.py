"""The distributed runtime: the log relayed to Kafka, the agents and projections as faust consumers.

`relay.py` publishes the event store to Kafka (transactional outbox); `worker.py` runs
the agents' `react` policies as faust agents; `projection.py` feeds the read models
from the stream; `tracing.py` makes a job one OpenTelemetry trace.
"""
