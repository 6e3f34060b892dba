"""Commit records: what makes a shard visible (one JSON line per shard, on a local disk in a
record file each shard's name is a hard link to), and what :meth:`Store.verify` reports."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import struct
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def _utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def shard_name(shard: Iterable[int]) -> str:
    return ".".join(str(int(i)) for i in shard) or "0"


@dataclass
class ShardReport:
    """What :meth:`Store.verify` found wrong: a committed shard (``shard``), or with
    ``shard=None`` a family's metadata, a stray file or a damaged dataset record."""

    family: str
    shard: tuple[int, ...] | None
    variable: str
    problem: str

    @property
    def where(self) -> str:
        """``"shard 3.1"``, or ``"metadata"`` when the report is not about a shard."""
        return "metadata" if self.shard is None else "shard " + shard_name(self.shard)


def _same_value(text: Any, value: float | None) -> bool:
    """Whether ``text`` (a stored ``repr``) is ``value``, bit for bit."""
    if text is None or value is None:
        return False
    try:
        stored = float(text)
    except (TypeError, ValueError):
        return False
    return struct.pack("<d", stored + 0.0) == struct.pack("<d", float(value) + 0.0)


class _RecordFile:
    """Commit records appended to one hidden file, each shard's name a hard link to it.

    Creating a small file per commit record costs ~0.7 ms on ext4 (inode allocation, the
    directory lock), as much as writing a fifth of the shard itself; appending a line and
    linking a name costs ~0.02 ms (docs/performance.md). The line is written before the
    link, so a reader who finds ``commits/<shard>`` finds its record in it; a link is atomic,
    so a kill leaves a shard committed or not, never half. After :data:`RECORDS` records, or
    when the writer closes it, the hidden name is removed; the records live on under the
    shards' names (``cache gc`` removes the hidden file of a killed writer with the other
    temporaries).
    """

    #: Records per file: few file creations, and a record read is one small file.
    RECORDS = 64

    def __init__(self, folder: str):
        self.folder = folder
        self.pid = os.getpid()
        self.count = 0
        self.path = os.path.join(folder, f".tmp-records-{uuid.uuid4().hex}")
        os.makedirs(folder, exist_ok=True)  # once per RECORDS commits
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        # a writer dropped without close() (an exception, a dropped Family) still tidies up
        self._finalizer = weakref.finalize(self, _RecordFile._release, self.fd, self.path)

    def usable(self) -> bool:
        return self.fd >= 0 and self.count < self.RECORDS and os.getpid() == self.pid

    def commit(self, line: bytes, name: str) -> bool:
        """Append ``line``, then link ``name`` to this file; ``False`` if links are refused."""
        os.write(self.fd, line + b"\n")
        self.count += 1
        target = os.path.join(self.folder, name)
        try:
            os.link(self.path, target)
        except FileExistsError:  # committed before (a duplicate computation): replace it
            tmp = os.path.join(self.folder, f".tmp-link-{uuid.uuid4().hex}")
            os.link(self.path, tmp)
            os.replace(tmp, target)
        except FileNotFoundError:
            raise
        except OSError:  # a filesystem without hard links
            return False
        return True

    def close(self) -> None:
        self._finalizer()
        self.fd = -1

    @staticmethod
    def _release(fd: int, path: str) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


#: Family._records where the filesystem refuses hard links: one file per record.
_NO_LINKS: Any = object()
