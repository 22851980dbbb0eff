"""The one exception type for mistakes a user can cause; the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """A problem the user can fix (bad option, missing or damaged data, unreadable file).

    The CLI prints ``mnistlab: error: <message>`` on stderr and exits with status 2.
    """
