"""Errors that carry a message a user can act on (shown as one line, no traceback)."""


class KireiError(Exception):
    """A failure the user can understand and fix: bad input, missing device, unwritable folder."""
