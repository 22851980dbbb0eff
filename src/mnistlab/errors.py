"""The one exception type for mistakes a user can cause (the CLI prints it as one line and exits 2), its two kinds
for images without a digit, and `one_line`."""


class UserError(Exception):
    """A problem the user can fix (bad option, missing or damaged data, unreadable file).

    The CLI prints ``mnistlab: error: <message>`` on stderr and exits with status 2.
    """


class NoInkError(UserError):
    """The image is blank, uniform or has too little contrast to hold a digit."""


class NoDigitError(NoInkError):
    """The image has ink, but none that a digit makes: a strip of an image, a speck, a long thin line, or (in the
    photo reading) only a frame, ruled lines or marks along its border, or several digit-sized marks far apart."""


def one_line(e: BaseException) -> str:
    """An exception's message folded onto one line (its type's name if it has none), to quote in a UserError."""
    return " ".join(str(e).split()) or type(e).__name__
