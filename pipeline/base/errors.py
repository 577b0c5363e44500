"""The one exception type for problems the user can fix (bad input, bad options, missing files)."""


class UserError(Exception):
    """Raised for input the user can correct; the CLI prints `error: <message>` and exits 2.

    The message is one line that names what is wrong and what to do about it.
    """
