"""One exception type whose message is the one line a user sees."""


class SandboxError(Exception):
    """A bad condition with a clear message saying what is wrong and what to do."""
