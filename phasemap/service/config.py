"""Settings of the service: where the store is, who may compute, and how big a request may be."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ParameterError

#: Default limit on the points of one grid submitted through the service.
DEFAULT_MAX_GRID_POINTS = 20_000_000
#: Default limit on the points the store may have to compute for one submission (whole shards
#: around the requested points; a sparse grid can need far more than it holds).
DEFAULT_MAX_COMPUTE_POINTS = 200_000_000
#: Default limit on the points of one slice answered by ``/slice``.
DEFAULT_MAX_SLICE_POINTS = 2_000_000
#: Default limit on a request body [bytes].
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: Default limit on the inner chunk a spec may ask for with ``chunks`` [points] (8 MiB of
#: float64: every point read decodes one inner chunk).
DEFAULT_MAX_CHUNK_POINTS = 2**20
#: Default limit on the shards one request may create (each is a file per variable; an
#: explicit-values axis makes a shard per value).
DEFAULT_MAX_REQUEST_SHARDS = 2048
#: Default limit on the grids waiting or running at once (more submissions answer 429).
DEFAULT_MAX_QUEUED_JOBS = 16

#: Host names that always mean this machine.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Addresses that listen on every interface.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _env_list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise ParameterError(name, raw, "an integer") from None
    if value < 1:
        raise ParameterError(name, raw, "a positive integer")
    return value


@dataclass
class ServiceConfig:
    """Everything ``phasemap serve`` can be told.

    Parameters
    ----------
    store : str, optional
        Store path or fsspec URL (default ``$PHASEMAP_STORE`` or ``data/store``).
    host, port : str, int
        Where to listen (loopback by default).
    token : str, optional
        When set, compute requests (``POST /api/grids`` and the explorer's grid form) need
        ``Authorization: Bearer <token>``. Default ``$PHASEMAP_TOKEN``.
    max_grid_points, max_compute_points, max_slice_points, max_body_bytes : int
        Request limits (env ``PHASEMAP_MAX_GRID_POINTS``, ``PHASEMAP_MAX_COMPUTE_POINTS``,
        ``PHASEMAP_MAX_SLICE_POINTS``, ``PHASEMAP_MAX_BODY_BYTES``).
    max_chunk_points, max_request_shards, max_queued_jobs : int
        Largest inner chunk a spec may ask for [points], most shards one request may create,
        most grids queued or running at once (env ``PHASEMAP_MAX_CHUNK_POINTS``,
        ``PHASEMAP_MAX_REQUEST_SHARDS``, ``PHASEMAP_MAX_QUEUED_JOBS``).
    allowed_hosts : list of str
        Host names the server answers besides its listening address (and, on a loopback or
        wildcard address, ``127.0.0.1``, ``localhost`` and ``::1``); any other ``Host``
        header is refused (DNS rebinding). ``"*"`` allows every host. Env
        ``PHASEMAP_ALLOWED_HOSTS`` (comma-separated).
    workers : int, optional
        Threads of the embedded Dask worker (default: one per core).
    session_lifetime_ms : int
        How long an explorer session whose browser went away is kept [ms] (env
        ``PHASEMAP_SESSION_LIFETIME_MS``, default 60 s).
    """

    store: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default_factory=lambda: os.environ.get("PHASEMAP_TOKEN") or None)
    max_grid_points: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_MAX_GRID_POINTS", DEFAULT_MAX_GRID_POINTS))
    max_compute_points: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_MAX_COMPUTE_POINTS", DEFAULT_MAX_COMPUTE_POINTS))
    max_slice_points: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_MAX_SLICE_POINTS", DEFAULT_MAX_SLICE_POINTS))
    max_body_bytes: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
    max_chunk_points: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_MAX_CHUNK_POINTS", DEFAULT_MAX_CHUNK_POINTS))
    max_request_shards: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_MAX_REQUEST_SHARDS", DEFAULT_MAX_REQUEST_SHARDS))
    max_queued_jobs: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_MAX_QUEUED_JOBS", DEFAULT_MAX_QUEUED_JOBS))
    allowed_hosts: list[str] = field(default_factory=lambda: _env_list(
        "PHASEMAP_ALLOWED_HOSTS"))
    workers: int | None = None
    session_lifetime_ms: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_SESSION_LIFETIME_MS", 60_000))
    #: Extra ``host:port`` origins allowed to open the explorer's websocket and to send
    #: state-changing requests (env ``PHASEMAP_ALLOWED_ORIGINS``, comma-separated).
    websocket_origins: list[str] = field(default_factory=lambda: _env_list(
        "PHASEMAP_ALLOWED_ORIGINS"))

    def hosts(self) -> list[str]:
        """Host names (no port) the server answers: its address, the loopback names when it
        listens on loopback or on every interface (then also this machine's name), and
        :attr:`allowed_hosts`."""
        names = {h.lower().strip("[]") for h in self.allowed_hosts}
        host = self.host.lower().strip("[]")
        if host in WILDCARD_HOSTS:
            import socket

            names |= {*LOOPBACK_HOSTS, socket.gethostname().lower()}
        else:
            names.add(host)
            if host in LOOPBACK_HOSTS or host.startswith("127."):
                names |= set(LOOPBACK_HOSTS)
        return sorted(names)

    def origins(self) -> list[str]:
        """``host:port`` origins allowed for the explorer's websocket and for writes: the
        answered hosts on the listening port, and :attr:`websocket_origins`."""
        hosts = [h for h in self.hosts() if h != "*"]
        netlocs = {f"[{h}]:{self.port}" if ":" in h else f"{h}:{self.port}" for h in hosts}
        return sorted(netlocs | {o.lower() for o in self.websocket_origins})
