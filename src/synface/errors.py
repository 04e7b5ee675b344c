"""Errors that carry a message meant for the person at the command line."""


class SynfaceError(Exception):
    """Base class for every error synface raises on purpose (bad input, missing data)."""


class DataNotFoundError(SynfaceError, FileNotFoundError):
    """A data file or folder the user pointed at (or SYNFACE_DATA implies) does not exist."""


class ImageReadError(SynfaceError, OSError):
    """An image file is unreadable, truncated or not an image."""
