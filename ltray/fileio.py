"""Atomic file writes on a local file system: a reader (or a resumed run) never sees a
half-written file. Data goes to a temporary file in the same folder, is fsynced, then renamed
over the target. Files get the permissions the umask allows (as `open` would give them), not
mkstemp's 0600, so others of the group can read results on shared storage.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_unfinished_write(name: str) -> bool:
    """A writer's temporary file (`.<name>.<random>.tmp`, see atomic_writer): never read, and left
    behind only by a writer killed mid-write (the file it was writing is then whole or absent)."""
    return name.startswith(".") and name.endswith(".tmp")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb"):
    """Yield a file object; on success the file replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_writer(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
