"""The one exception type for bad user input: the CLI prints its message on one line and exits 2."""


class BenchmarkError(Exception):
    """A problem the user can fix; the message names it and says what to do."""
