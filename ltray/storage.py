"""Where an experiment folder lives: a local path or an object-store URI, behind one interface.

Every file ltray writes goes through a `Storage`. Local folders get temporary file + fsync +
rename (readable as the umask allows); object stores (`s3://`, `gs://`, through pyarrow's
filesystems, credentials and endpoints from the standard environment) get one PUT per file,
which is atomic. Paths inside a storage are relative POSIX strings ("masks/x/round_00.ltmask").
"""

from __future__ import annotations

import os
import posixpath
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import parse_qs, urlparse, urlunparse

from ltray.errors import ConfigError, ExperimentError
from ltray.fileio import atomic_write_bytes, is_unfinished_write

OBJECT_SCHEMES = ("s3", "gs", "gcs")
SCHEMES_HELP = "a path, or a file://, s3:// or gs:// URI"


class StorageError(ExperimentError):
    """A file of the experiment that cannot be read or written; the message names it."""

    def __init__(self, where: str, action: str, cause: BaseException | str, missing: bool = False):
        reason = cause if isinstance(cause, str) else (getattr(cause, "strerror", None) or str(cause))
        super().__init__(f"{where}: cannot {action} ({reason})")
        self.where = where
        self.missing = missing


class Storage(ABC):
    """A folder (local or in a bucket) and the files below it."""

    uri: str  # the root, as shown to users and passed to other processes

    @abstractmethod
    def child(self, rel: str) -> Storage:
        """The storage rooted at `rel` below this one."""

    def describe(self, rel: str = "") -> str:
        return join(self.uri, rel) if rel else self.uri

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The file's bytes; StorageError (missing=True when it does not exist)."""

    @abstractmethod
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Replace the file at `rel` by `data`, atomically: readers see the old or the new file."""

    @abstractmethod
    def info(self, rel: str) -> str | None:
        """'file', 'dir' or None (absent)."""

    @abstractmethod
    def list_dir(self, rel: str = "") -> list[str]:
        """Names of the entries directly under `rel`, sorted ([] when it does not exist)."""

    @abstractmethod
    def walk(self, rel: str = "") -> list[str]:
        """Every file below `rel`, as paths relative to it, sorted ([] when it does not exist).
        One listing (a few requests on an object store), not one request per folder."""

    @abstractmethod
    def delete(self, rel: str) -> None:
        """Remove a file (absent is fine)."""

    @abstractmethod
    def delete_tree(self, rel: str) -> None:
        """Remove a folder and everything under it (absent is fine)."""

    def local_path(self, rel: str = "") -> Path | None:
        """The local file system path of `rel`, or None on an object store."""
        return None

    def unfinished_writes(self) -> list[str]:
        """Temporary files that writers killed mid-write left (relative paths, sorted); listings
        leave them out. None on an object store, where an upload appears whole or not at all."""
        return []

    # ---- conveniences --------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self.info(rel) is not None

    def is_file(self, rel: str) -> bool:
        return self.info(rel) == "file"

    def is_dir(self, rel: str) -> bool:
        return self.info(rel) == "dir"

    def read_text(self, rel: str) -> str:
        data = self.read_bytes(rel)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StorageError(self.describe(rel), "read", "not UTF-8 text") from None

    def read_bytes_or_none(self, rel: str) -> bytes | None:
        try:
            return self.read_bytes(rel)
        except StorageError as e:
            if e.missing:
                return None
            raise

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))


class LocalStorage(Storage):
    """A folder on a local or network (NFS) file system."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.uri = str(self.root)

    def local_path(self, rel: str = "") -> Path:
        return self.root / rel if rel else self.root

    def child(self, rel: str) -> LocalStorage:
        return LocalStorage(self.local_path(rel))

    def read_bytes(self, rel: str) -> bytes:
        path = self.local_path(rel)
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise StorageError(str(path), "read", "no such file", missing=True) from e
        except IsADirectoryError as e:
            raise StorageError(str(path), "read", "a folder, not a file") from e
        except OSError as e:
            raise StorageError(str(path), "read", e) from e

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self.local_path(rel)
        try:
            atomic_write_bytes(path, data)
        except OSError as e:
            raise StorageError(str(path), "write", e) from e

    def info(self, rel: str) -> str | None:
        path = self.local_path(rel)
        try:
            return "dir" if path.is_dir() else "file" if path.exists() else None
        except OSError as e:
            raise StorageError(str(path), "look up", e) from e

    def list_dir(self, rel: str = "") -> list[str]:
        path = self.local_path(rel)
        try:
            return sorted(p.name for p in path.iterdir() if not is_unfinished_write(p.name))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise StorageError(str(path), "list", e) from e

    def walk(self, rel: str = "") -> list[str]:
        return self._walk(rel, unfinished=False)

    def unfinished_writes(self) -> list[str]:
        return self._walk("", unfinished=True)

    def _walk(self, rel: str, unfinished: bool) -> list[str]:
        """The files below `rel`: the unfinished writes, or every other file."""
        base = self.local_path(rel)
        out = []
        try:
            for folder, _, files in os.walk(base):
                prefix = Path(folder).relative_to(base).as_posix()
                out += [f if prefix == "." else f"{prefix}/{f}" for f in files if is_unfinished_write(f) == unfinished]
        except OSError as e:
            raise StorageError(str(base), "list", e) from e
        return sorted(out)

    def delete(self, rel: str) -> None:
        path = self.local_path(rel)
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(str(path), "delete", e) from e

    def delete_tree(self, rel: str) -> None:
        import shutil

        path = self.local_path(rel)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(str(path), "delete", e) from e


class ObjectStorage(Storage):
    """A prefix in a bucket, through a pyarrow filesystem (S3, GCS)."""

    def __init__(self, uri: str, filesystem=None, base: str | None = None):
        from pyarrow import fs

        self.uri = uri.rstrip("/")
        self._fs_module = fs
        if filesystem is not None and base is not None:
            self.fs, self.base = filesystem, base
            return
        try:
            self.fs, self.base = fs.FileSystem.from_uri(filesystem_uri(self.uri))
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise ConfigError(f"storage {uri}: cannot open ({e})") from None

    def __getstate__(self):  # picklable (Tune and Ray ship it): the module is imported again
        return {k: v for k, v in self.__dict__.items() if k != "_fs_module"}

    def __setstate__(self, state):
        from pyarrow import fs

        self.__dict__.update(state, _fs_module=fs)

    def child(self, rel: str) -> ObjectStorage:
        return ObjectStorage(join(self.uri, rel), self.fs, self._path(rel))

    def _path(self, rel: str) -> str:
        return posixpath.join(self.base, rel) if rel else self.base

    def read_bytes(self, rel: str) -> bytes:
        try:
            with self.fs.open_input_stream(self._path(rel)) as f:
                return f.read()
        except FileNotFoundError as e:
            raise StorageError(self.describe(rel), "read", "no such object", missing=True) from e
        except OSError as e:
            raise StorageError(self.describe(rel), "read", e) from e

    def write_bytes(self, rel: str, data: bytes) -> None:
        # the whole file is in memory first, so a failure never leaves a partial object behind
        try:
            with self.fs.open_output_stream(self._path(rel)) as f:
                f.write(data)
        except OSError as e:
            raise StorageError(self.describe(rel), "write", e) from e

    def info(self, rel: str) -> str | None:
        try:
            kind = self.fs.get_file_info(self._path(rel)).type
        except OSError as e:
            raise StorageError(self.describe(rel), "look up", e) from e
        types = self._fs_module.FileType
        return {types.File: "file", types.Directory: "dir"}.get(kind)

    def list_dir(self, rel: str = "") -> list[str]:
        selector = self._fs_module.FileSelector(self._path(rel), allow_not_found=True, recursive=False)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as e:
            raise StorageError(self.describe(rel), "list", e) from e
        return sorted(posixpath.basename(i.path.rstrip("/")) for i in infos)

    def walk(self, rel: str = "") -> list[str]:
        base = self._path(rel).rstrip("/")
        selector = self._fs_module.FileSelector(base, allow_not_found=True, recursive=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as e:
            raise StorageError(self.describe(rel), "list", e) from e
        files = self._fs_module.FileType.File
        return sorted(i.path[len(base) + 1:] for i in infos if i.type == files)

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self._path(rel))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(self.describe(rel), "delete", e) from e

    def delete_tree(self, rel: str) -> None:
        try:
            self.fs.delete_dir(self._path(rel))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(self.describe(rel), "delete", e) from e

    def tune_filesystem(self) -> tuple[object, str]:
        """(pyarrow filesystem, path) for Tune's RunConfig(storage_filesystem=..., storage_path=...)."""
        return self.fs, self.base


def filesystem_uri(uri: str) -> str:
    """The URI pyarrow opens for `uri`: on S3, with delayed opens, so that a file smaller than a
    multipart chunk (every file ltray writes but large masks) is one PutObject request, where
    pyarrow's default is three (create, upload part, complete a multipart upload). A write that
    fails still fails when the file is closed, inside `write_bytes`. A user's own setting wins."""
    parts = urlparse(uri)
    if parts.scheme != "s3" or "allow_delayed_open" in parse_qs(parts.query):
        return uri
    query = "&".join(q for q in (parts.query, "allow_delayed_open=true") if q)
    return urlunparse(parts._replace(query=query))


def is_uri(location: str) -> bool:
    return "://" in str(location)


def join(base: str, rel: str) -> str:
    """`base/rel` for a path or a URI."""
    return f"{base.rstrip('/')}/{rel.lstrip('/')}" if rel else base


def resolve_location(location: str | os.PathLike, what: str = "storage") -> str:
    """A canonical location: URIs as given (file:// becomes a path), paths made absolute here."""
    text = str(location).strip()
    if not text:
        raise ConfigError(f"{what}: empty location; give {SCHEMES_HELP}")
    if is_uri(text):
        parsed = urlparse(text)
        scheme = parsed.scheme.lower()
        if scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise ConfigError(f"{what}: {text}: a file:// URI names no host (file:///abs/path)")
            return str(Path(parsed.path).resolve())
        if scheme not in OBJECT_SCHEMES:
            raise ConfigError(f"{what}: {text}: unsupported scheme {parsed.scheme!r}; give {SCHEMES_HELP}")
        if not parsed.netloc:
            raise ConfigError(f"{what}: {text}: names no bucket")
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


def open_storage(location: str | os.PathLike) -> Storage:
    """The Storage at a path or URI (see resolve_location)."""
    resolved = resolve_location(location)
    return ObjectStorage(resolved) if is_uri(resolved) else LocalStorage(resolved)
