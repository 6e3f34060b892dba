"""Leases: a running compute's claim on its families, which ``gc`` honours."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable

from .blobs import BlobStore

#: A lease is honoured by ``gc`` for this long after its holder's last heartbeat [s].
LEASE_TTL = 120.0


#: How often a compute renews its lease [s].
LEASE_HEARTBEAT = 15.0


def holder_gone(host: object, pid: object) -> bool:
    """Whether a lease's holder is known to be dead: a process of this machine that no
    longer exists. A holder on another machine, or one we cannot check, counts as alive
    (its lease then lasts until its heartbeat is :data:`LEASE_TTL` old)."""
    if host != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


class Lease:
    """A compute's claim on families, which :meth:`Store.gc` honours.

    A small object ``leases/<id>.json`` naming the families and the holder's latest
    heartbeat (its clock, epoch seconds), rewritten every :data:`LEASE_HEARTBEAT` seconds by
    a thread of its own while held. ``gc`` keeps every family of a lease whose heartbeat is
    less than :data:`LEASE_TTL` old, so a live compute is safe on a local disk and an object
    store alike, and a killed one's lease simply expires (and ``gc`` removes it); a lease
    whose holder was a process of this machine that no longer exists (:func:`holder_gone`,
    e.g. a ``kill -9``) is not honoured at all. Clocks of the machines sharing a store must
    agree to well within ``LEASE_TTL``.
    """

    def __init__(self, store: BlobStore, families: Iterable[str]):
        self.store = store
        self.families = sorted(set(families))
        self.id = uuid.uuid4().hex
        self.key = f"leases/{self.id}.json"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self, heartbeat: float | None = None) -> None:
        """Publish the lease with ``heartbeat`` (default now)."""
        body = {"families": self.families,
                "heartbeat": time.time() if heartbeat is None else heartbeat,
                "host": socket.gethostname(), "pid": os.getpid()}
        self.store.write_blob(self.key, json.dumps(body).encode())

    def acquire(self) -> Lease:
        self.write()
        self._thread = threading.Thread(target=self._beat, name="phasemap-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_HEARTBEAT):
            with contextlib.suppress(OSError):
                self.write()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.store.delete(self.key)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
