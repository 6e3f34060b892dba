"""Blob I/O of a store: small whole objects written atomically, on a local disk or any
fsspec URL, all with one file mode (0o666 minus the umask)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

import fsspec
import zarr

from .._paths import default_store_url


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (racy only against other threads)
    os.umask(mask)
    return mask


class BlobStore:
    """The objects of a store at ``url`` (a local path or an fsspec URL; default
    :func:`default_store_url`): written whole and atomically, read, listed, deleted.

    Files are created as ``open`` would create them: mode ``0o666`` minus the umask, so
    shards, records, slots, requests, leases and Zarr metadata share one mode; folders
    ``0o777`` minus the umask. Instances are cheap; they hold no open files.
    """

    def __init__(self, url: str | os.PathLike | None = None):
        url = str(url) if url is not None else default_store_url()
        self.url = url
        self._file_mode: int | None = None
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                else (self.fs.protocol,))
        if self.local:
            self.root = os.path.abspath(self.root)
            # workers (other processes, other working directories) get the absolute path
            self.url = self.root
            os.makedirs(self.root, exist_ok=True)
            self.zstore: Any = zarr.storage.LocalStore(self.root)
        else:
            self.zstore = zarr.storage.FsspecStore.from_url(url)

    @property
    def file_mode(self) -> int:
        """Mode of every file this store creates: ``0o666`` minus the umask (read when the
        first file is written, so readers never pay for it)."""
        if self._file_mode is None:
            self._file_mode = 0o666 & ~_umask()
        return self._file_mode

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # --- small objects --------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def write_blob(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically (readers see the old or the new, never half)."""
        path = self._path(key)
        if self.local:
            folder = os.path.dirname(path)
            try:  # the folder usually exists: no makedirs (a few syscalls) per shard
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            try:
                os.fchmod(fd, self.file_mode)  # mkstemp makes 0600: the store's one mode
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        else:
            self.fs.pipe_file(path, data)

    def create_blob(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` only if nothing is there; ``False`` if something is.

        Atomic on a local disk (a hard link of a whole temporary file fails if the name
        exists). On object stores it is fsspec's ``mode="create"`` (a conditional PUT where
        the backend has one, else a check then a PUT).
        """
        path = self._path(key)
        if not self.local:
            if self.fs.exists(path):
                return False
            try:
                self.fs.pipe_file(path, data, mode="create")
            except (FileExistsError, TypeError):
                return False
            return True
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            os.fchmod(fd, self.file_mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError:  # no hard links here: exclusive create of the name itself
                try:
                    fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                except FileExistsError:
                    return False
                with os.fdopen(fd2, "wb") as f:
                    f.write(data)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def read_blob(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None

    def list_blobs(self, prefix: str) -> list[str]:
        """Names (not paths) directly under ``prefix``; hidden temporaries excluded."""
        try:
            entries = self.fs.ls(self._path(prefix), detail=False)
        except FileNotFoundError:
            return []
        names = [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]
        return sorted(n for n in names if not n.startswith("."))

    def delete(self, key: str, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(key), recursive=recursive)

    def size_of(self, key: str) -> int | None:
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError:
            return None

    def usage(self) -> int:
        """Bytes the store holds (every file under its root)."""
        if self.local:
            total = 0
            for dirpath, _, files in os.walk(self.root):
                for f in files:
                    with contextlib.suppress(FileNotFoundError):
                        total += os.lstat(os.path.join(dirpath, f)).st_size
            return total
        try:
            return int(self.fs.du(self.root, total=True))
        except FileNotFoundError:
            return 0
