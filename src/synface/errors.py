"""Errors that carry a message meant for the person at the command line."""


class SynfaceError(Exception):
    """Base class for every error synface raises on purpose (bad input, missing data)."""


class DataNotFoundError(SynfaceError, FileNotFoundError):
    """A data file or folder the user pointed at (or SYNFACE_DATA implies) does not exist."""


class ImageReadError(SynfaceError, OSError):
    """An image file is unreadable, truncated or not an image."""


class OutputWriteError(SynfaceError, OSError):
    """An output could not be written (disk full, read-only, no permission)."""


class FolderInUseError(SynfaceError):
    """Another live process holds the output folder's lock."""


def cannot_write(path, exc: BaseException, tmp=None, kept: str | None = None) -> OutputWriteError:
    """The error for a failed write of ``path``: removes the temporary file ``tmp`` (if any)
    and says why in words, and what was kept."""
    import os
    from pathlib import Path

    if tmp is not None:
        try:
            Path(tmp).unlink(missing_ok=True)
        except OSError:
            pass
    reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc).splitlines()[0]
    text = f"cannot write {path}: {reason}"
    if isinstance(exc, OSError) and exc.errno in (28,):
        text += " (the disk is full)"
    if kept:
        text += f"; {kept}"
    return OutputWriteError(text)
