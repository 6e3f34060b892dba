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
    workers: int | None = None
    session_lifetime_ms: int = field(default_factory=lambda: _env_int(
        "PHASEMAP_SESSION_LIFETIME_MS", 60_000))
    #: Extra ``host:port`` origins allowed to open the explorer's websocket.
    websocket_origins: list[str] = field(default_factory=list)

    def origins(self) -> list[str]:
        """Websocket origins of the explorer: the listening address and its loopback names."""
        hosts = {self.host}
        if self.host in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
            hosts |= {"127.0.0.1", "localhost"}
        return sorted({f"{h}:{self.port}" for h in hosts} | set(self.websocket_origins))
