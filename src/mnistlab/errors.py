"""The one exception type for mistakes a user can cause (the CLI prints it as one line and exits 2), and `one_line`."""


class UserError(Exception):
    """A problem the user can fix (bad option, missing or damaged data, unreadable file).

    The CLI prints ``mnistlab: error: <message>`` on stderr and exits with status 2.
    """


def one_line(e: BaseException) -> str:
    """An exception's message folded onto one line (its type's name if it has none), to quote in a UserError."""
    return " ".join(str(e).split()) or type(e).__name__
