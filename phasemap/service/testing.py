"""Run the real ``phasemap serve`` in a subprocess on loopback (for tests and benchmarks).

>>> with running_server(tmp_path / "store") as url:   # doctest: +SKIP
...     httpx.get(f"{url}/api/health").json()
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A ``phasemap serve`` subprocess; ``url`` once :meth:`start` returned."""

    def __init__(self, store: str | os.PathLike, *, port: int | None = None,
                 token: str | None = None, env: Mapping[str, str] | None = None,
                 precompute: bool = False):
        self.store = str(store)
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.token = token
        self.log_path = Path(tempfile.mkstemp(prefix="phasemap-serve-", suffix=".log")[1])
        cmd = [sys.executable, "-m", "phasemap.cli", "serve", "--store", self.store,
               "--host", LOOPBACK, "--port", str(self.port)]
        if not precompute:
            cmd.append("--no-precompute")
        if token:
            cmd += ["--token", token]
        full_env = {k: v for k, v in os.environ.items() if k != "PHASEMAP_TOKEN"}
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.cmd = cmd
        self.env = full_env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> str:
        import httpx

        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"phasemap serve exited with {self.proc.returncode}:\n"
                                   f"{self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return self.url
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"phasemap serve did not answer within {timeout:.0f} s:\n"
                           f"{self.log()[-3000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully (lifespan closes Dask)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def running_server(store: str | os.PathLike, **kwargs) -> Iterator[ServerProcess]:
    """``phasemap serve`` on a free loopback port for the duration of the block."""
    server = ServerProcess(store, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


_SHARED: dict[tuple, ServerProcess] = {}


def shared_server(token: str | None = None, env: Mapping[str, str] | None = None
                  ) -> ServerProcess:
    """One server per (token, env) for the whole test run, on a temporary store.

    Several test modules use the same server so that its start-up (imports of Panel and
    HoloViews, a few seconds) is paid once; it is stopped and its store deleted at exit.
    """
    key = (token, tuple(sorted((env or {}).items())))
    server = _SHARED.get(key)
    if server is not None and server.proc is not None and server.proc.poll() is None:
        return server
    root = tempfile.mkdtemp(prefix="phasemap-service-test-")
    server = ServerProcess(Path(root) / "store", token=token, env=env)
    server.start()
    _SHARED[key] = server

    def cleanup() -> None:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            server.log_path.unlink()

    atexit.register(cleanup)
    return server


#: Token and limits of the server the service tests share.
TEST_TOKEN = "phasemap-test-token"
TEST_ENV = {
    "PHASEMAP_MAX_GRID_POINTS": "200000",
    "PHASEMAP_MAX_COMPUTE_POINTS": str(2**22),
    "PHASEMAP_MAX_SLICE_POINTS": "1000",
    "PHASEMAP_MAX_BODY_BYTES": "65536",
}


def shared_test_server() -> ServerProcess:
    """The server shared by ``tests/test_service_*.py`` and ``tests/test_explorer_browser.py``."""
    return shared_server(TEST_TOKEN, TEST_ENV)


def computed_grid(url: str, spec: Mapping, token: str | None = TEST_TOKEN,
                  timeout: float = 120.0) -> str:
    """Submit ``spec`` to the server at ``url``, wait until it is computed, return its id."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, timeout=60) as client:
        rid = client.post("/api/grids", json=dict(spec), headers=headers).json()["id"]
        deadline = time.monotonic() + timeout
        while client.get(f"/api/grids/{rid}").json()["status"] != "done":
            if time.monotonic() > deadline:
                raise TimeoutError(f"grid {rid} did not finish within {timeout:g} s")
            time.sleep(0.1)
    return rid
