"""The events API: publishing (`POST /v1/events`: who may publish which type, schema and
reference checks, effects) and reading the log (`GET /v1/events`, the catalog, polling).

It is a producer and a reader of the event log (`causeflow.event`), which knows nothing of it.
"""
