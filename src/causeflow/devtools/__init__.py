"""Developer tools behind `causeflow listen` and `causeflow trigger`.

They talk to a running service through the client library (`causeflow_sdk`), as any
integration would; `ToolError` is a failure the command reports as one line.
"""


class ToolError(Exception):
    """A failure reported to the developer as one line, with a non-zero exit."""
