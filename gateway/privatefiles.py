"""Files that hold what the node keeps about students: its user's alone.

The message log, the consent store and the monitoring store hold subject hashes,
grantor names and who asked for what. They are created readable and writable by
the node's user only (0600), in folders only it may enter (0700); SQLite gives
its ``-wal`` and ``-shm`` files the mode of the database file. A file or folder
that exists already keeps its mode: an operator may have chosen it.
"""

from __future__ import annotations

import os
from pathlib import Path


def create_private_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents with mode 0700.

    Does nothing to a folder that exists. Raises OSError if one cannot be made.
    """
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for each in reversed(missing):
        # One at a time: mkdir(parents=True) gives the parents the umask's mode.
        each.mkdir(mode=0o700, exist_ok=True)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600, and its missing folders with 0700.

    Does nothing to a file that exists. Raises OSError if it cannot be made.
    """
    create_private_folder(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
