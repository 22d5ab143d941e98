"""Writing files safely: a temporary file created exclusively beside the target, then renamed.

    folder = open(target's folder, O_DIRECTORY)         every step below is relative to it
    tmp    = openat(folder, ".<name>.<random>.tmp",
                    O_CREAT | O_EXCL | O_NOFOLLOW)      a name planted in advance (a symlink
                                                        to ~/.bashrc, a file) is never opened:
                                                        EEXIST, and another random name is tried
    write, fsync
    renameat(folder, tmp → folder, name)                atomic; a symlink planted under the
                                                        final name is replaced, not followed

Drafts (pipeline/draft.py stages all three files, records the issue, then commits them),
exports (`digest sources export-opml --out`) and the rewritten `sources.toml` go through here.
On the ground floor with no project imports, so every floor may use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Staged", "commit", "discard", "stage", "write_file"]

#: O_NOFOLLOW and O_DIRECTORY are POSIX; where they are missing (Windows) they are no-ops.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_ATTEMPTS = 16


@dataclass(frozen=True, slots=True)
class Staged:
    """A temporary file written beside `final`, waiting for `commit`."""

    tmp: Path
    final: Path


def stage(final: Path, data: bytes, mode: int | None = None) -> Staged:
    """Write `data` to a new temporary file in `final`'s folder (created exclusively).

    `mode` sets the permission bits exactly; None leaves them to the umask, as for any new file.

    Raises OSError (the folder cannot be written, or is not a folder).
    """
    folder = final.parent
    dir_fd = os.open(folder, os.O_RDONLY | _DIRECTORY)
    try:
        for _ in range(_ATTEMPTS):
            name = f".{final.name}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(
                    name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666, dir_fd=dir_fd
                )
            except FileExistsError:
                continue  # something already has this name: never reuse it
            try:
                if mode is not None:
                    os.fchmod(fd, mode)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dir_fd)
                raise
            return Staged(folder / name, final)
        raise FileExistsError(f"{folder}: no free temporary name after {_ATTEMPTS} tries")
    finally:
        os.close(dir_fd)


def commit(staged: Staged) -> None:
    """Rename the staged file over its final name (a symlink there is replaced, not followed)."""
    os.replace(staged.tmp, staged.final)


def discard(staged: Staged) -> None:
    """Remove a staged file that will not be used."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staged.tmp)


def write_file(path: Path, data: bytes | str, *, keep_mode: bool = True) -> None:
    """Replace `path` with `data` safely (text is written as UTF-8).

    With `keep_mode`, a file already there keeps its permission bits (read without following a
    symlink planted there).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    mode: int | None = None
    if keep_mode:
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if not os.path.islink(path):
                mode = st.st_mode & 0o777
    staged = stage(path, raw, mode)
    try:
        commit(staged)
    except BaseException:
        discard(staged)
        raise
