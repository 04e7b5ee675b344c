"""One writer per output folder: an exclusive lock every command that writes a folder takes.

The lock is ``FOLDER/.synface.lock``, held with ``flock`` for as long as the writer runs, and
records its holder (pid, host, command, start time) for the message a second writer gets. The
kernel drops a flock when its process dies, however it dies (SIGKILL included), so a lock left
by a dead process is stale by construction: the next writer takes it (and says so, naming
the dead holder). Network filesystems without flock support are not protected.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from synface.errors import FolderInUseError, cannot_write

LOCK_NAME = ".synface.lock"


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:200],
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} "
            f"({holder.get('command', '?')})")


@contextmanager
def folder_lock(folder: str | Path, what: str = "this folder"):
    """Hold ``folder``'s writer lock (creating the folder); FolderInUseError when a live
    process holds it. Re-entrant within one process (a command that calls another writer)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(folder, exc) from None
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUseError(
                f"{folder} is in use by {_describe(_read_holder(path))}: two writers would damage {what}. "
                f"Wait for it to finish, or choose another output folder"
            ) from None
        previous = _read_holder(path)
        if previous and previous.get("pid") != os.getpid():
            from tqdm.auto import tqdm

            tqdm.write(f"{folder}: taking over the lock of a process that is gone ({_describe(previous)})")
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_holder()) + "\n").encode(), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            os.ftruncate(fd, 0)  # an empty lock file: nobody holds it
    finally:
        os.close(fd)  # closing drops the flock


_HELD: dict[str, int] = {}
