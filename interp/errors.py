"""One exception type whose message is a single actionable line; the CLI prints it without a traceback."""


class InterpError(Exception):
    """A user-facing error: the message says what went wrong and what to do."""
