"""One process, one port: the FastAPI app with the Panel explorer mounted in it, under uvicorn.

``create_app`` wires the API router (:mod:`.api`), the explorer (:mod:`.explorer`, mounted
with Panel's FastAPI integration ``panel.io.fastapi.add_applications``, which runs Bokeh
server sessions over Starlette websockets) and a body-size limit around one
:class:`~phasemap.service.jobs.JobManager`. ``serve`` first brings the paper's datasets into
the store (a cached dataset costs a few milliseconds, so later starts are immediate) and then
runs uvicorn until interrupted; the embedded Dask cluster is closed on the way out.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import tempfile
import threading
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response

from .. import __version__
from ..store import Store
from .api import DatasetCache, SafeJSONResponse, build_router, install_error_handlers
from .config import ServiceConfig
from .jobs import JobManager
from .security import RequestGuard, replace_component_route

#: Where the explorer lives.
EXPLORER_PATH = "/explorer"


class BodySizeLimit:
    """ASGI middleware: answer 413 to any request body larger than ``limit`` bytes.

    Checks ``Content-Length`` first and counts the bytes of chunked bodies as they arrive,
    so a large body is never read into memory whole.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.limit
            except ValueError:
                too_big = True
            if too_big:
                return await self._reject(send)
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._reject(send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _reject(self, send):
        payload = SafeJSONResponse({"error": "too_large",
                                    "message": f"request body over {self.limit:,} bytes"},
                                   status_code=413)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload.body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload.body})


class ExplorerGuard:
    """ASGI middleware: a request the explorer's Bokeh handlers reject (an empty or malformed
    ``bokeh_session_id``, say) is answered 400 rather than 500."""

    def __init__(self, app, prefix: str):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            from bokeh.protocol.exceptions import ProtocolError

            if not isinstance(exc, ProtocolError | ValueError | KeyError):
                raise
            body = SafeJSONResponse({"error": "bad_request", "message": str(exc)[:200]},
                                    status_code=400)
            await body(scope, receive, send)


def job_manager(config: ServiceConfig, store: Store) -> JobManager:
    """The job manager of a server with ``config``'s limits."""
    return JobManager(store, max_grid_points=config.max_grid_points,
                      max_compute_points=config.max_compute_points,
                      max_shards=config.max_request_shards,
                      max_queued=config.max_queued_jobs, workers=config.workers)


def create_app(config: ServiceConfig | None = None, jobs: JobManager | None = None, *,
               explorer: bool = True) -> FastAPI:
    """The service as an ASGI app (API under ``/api``, explorer under ``/explorer``).

    ``jobs`` is closed when the app shuts down, whether it was given or created here.
    """
    config = config or ServiceConfig()
    store = Store(config.store)
    jobs = jobs or job_manager(config, store)
    datasets = DatasetCache(store)

    warm = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=warm_up, args=(warm,), name="phasemap-warm-up",
                         daemon=True).start()
        try:
            yield
        finally:
            jobs.close()

    app = FastAPI(
        title="phasemap",
        version=__version__,
        summary="Transport phase maps of quantum-dot thermoelectric devices",
        description="Evaluate points, compute grids into the content-addressed store in the "
                    "background, and read points and slices of stored datasets. The "
                    f"interactive explorer is at {EXPLORER_PATH}.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.state.config, app.state.store, app.state.jobs = config, store, jobs
    app.state.warm = warm
    install_error_handlers(app, store)
    app.include_router(build_router(config, store, jobs, datasets))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(EXPLORER_PATH if explorer else "/docs")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        icon = Path(panel_dist()) / "images" / "favicon.ico" if explorer else None
        if icon is None or not icon.is_file():
            return Response(status_code=404)
        return FileResponse(icon, headers={"Cache-Control": "public, max-age=86400"})

    if explorer:
        from .explorer import mount_explorer

        try:
            mount_explorer(app, config, store, jobs, datasets, path=EXPLORER_PATH)
        except ImportError as exc:  # Panel's FastAPI integration needs bokeh-fastapi
            _explorer_unavailable(app, f"{exc} (pip install 'phasemap[service]' or "
                                       "pip install bokeh-fastapi)")
        for route in app.routes:  # the page and its websocket are not part of the JSON API
            if getattr(route, "path", "").startswith(EXPLORER_PATH):
                route.include_in_schema = False  # type: ignore[attr-defined]
        replace_component_route(app)
        app.add_middleware(ExplorerGuard, prefix=EXPLORER_PATH)
    app.add_middleware(BodySizeLimit, limit=config.max_body_bytes)
    app.add_middleware(RequestGuard, config=config, websocket_prefix=EXPLORER_PATH)
    return app


def warm_up(done: threading.Event | None = None) -> None:
    """Compile and import, in the background at start-up, what the first requests would
    otherwise wait for: the evaluate kernels, the store's compute and read paths (on a
    one-shard grid in a temporary store, never the served one) and interpolation (scipy).
    Sets ``done`` when finished, even if a step failed (the failure is printed)."""
    try:
        import phasemap

        from ..query import point_record
        from ..store import Store
        from ..store import compute as store_compute

        ds = phasemap.evaluate(eps=[-1.0, 0.0, 1.0], T=7.5, dT=1.0, dV=1.0)
        point_record(ds, {"eps": 0.0})
        with tempfile.TemporaryDirectory(prefix="phasemap-warm-up-") as tmp:
            spec = {"params": {"T": 7.5, "dT": 1.0}, "axes": {"eps": [-1.0, 0.0, 1.0],
                                                              "dV": [0.0, 1.0]}}
            stored = store_compute(spec, store=Store(f"{tmp}/store"))
            point_record(stored, {"eps": 0.0, "dV": 1.0})
            point_record(stored, {"eps": 0.5, "dV": 0.5}, interp=True)
    except Exception:  # a server that could not warm up still serves; it is only slower
        traceback.print_exc()
    finally:
        if done is not None:
            done.set()


def _explorer_unavailable(app: FastAPI, reason: str) -> None:
    """Serve the API alone, and say at ``/explorer`` why the explorer is missing."""
    print(f"phasemap serve: the explorer is not available: {reason}", file=sys.stderr)

    @app.get(EXPLORER_PATH, include_in_schema=False)
    def no_explorer() -> Response:
        return SafeJSONResponse({"error": "explorer_unavailable", "message": reason},
                                status_code=503)


def panel_dist() -> str:
    """Panel's bundled static files (its favicon is the explorer's)."""
    import panel

    return str(Path(panel.__file__).parent / "dist")


# --- the paper's datasets ----------------------------------------------------------------

def paper_specs(root: Path | None = None) -> list[Path]:
    """Grid specs of the paper's pipelines (``pipelines/paper/*.yaml``), each listed once."""
    from ..query import pipeline_specs

    root = root or Path(__file__).resolve().parents[2] / "pipelines" / "paper"
    seen: dict[Path, None] = {}
    for path in sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")):
        for spec in pipeline_specs(path):
            seen.setdefault(spec.resolve(), None)
    return list(seen)


def precompute(jobs: JobManager, specs: list[Path], compute: Callable[..., Any] | None = None,
               echo: Callable[[str], Any] = print) -> list[str]:
    """Bring every spec into the store through ``jobs`` (one at a time); return the ids.

    ``compute(spec, store, client, label=...)`` may replace :func:`phasemap.compute` to show
    progress (the CLI passes its progress bar).
    """
    from ..query import load_spec

    grids = [load_spec(p) for p in specs]  # validate every spec before computing any
    ids = []
    for path, grid in zip(specs, grids, strict=True):
        fn = None
        if compute is not None:
            label = grid.name or path.stem

            def fn(spec, store=None, client=None, progress=None, _label=label):
                return compute(spec, store, client, label=_label)
        # the project's own specs: no service limits
        job = jobs.submit(grid, fn, check=False)
        job.event.wait()
        if job.status != "done":
            raise RuntimeError(f"{path.name}: {job.error}")
        echo(f"{path.name}: dataset {job.id} ({job.points_computed:,} points computed)")
        ids.append(job.id)
    return ids


def serve(config: ServiceConfig, *, precompute_paper: bool = True,
          compute: Callable[..., Any] | None = None,
          echo: Callable[[str], Any] | None = None) -> None:
    """Compute the paper's datasets if missing, then serve until interrupted."""
    import faulthandler

    import uvicorn

    faulthandler.enable()  # a crash in native code leaves its Python stack in the log

    echo = echo or functools.partial(print, file=sys.stderr)
    store = Store(config.store)
    jobs = job_manager(config, store)
    try:
        if precompute_paper:
            specs = paper_specs()
            if specs:
                echo(f"paper datasets: {len(specs)} grid(s) into {store.url}")
                precompute(jobs, specs, compute=compute, echo=echo)
            else:
                echo("no paper pipelines under pipelines/paper/; serving the store as it is")
        app = create_app(config, jobs)
    except BaseException:
        jobs.close()
        raise
    echo(f"phasemap {__version__}: explorer http://{_url_host(config.host)}:{config.port}"
         f"{EXPLORER_PATH}, API http://{_url_host(config.host)}:{config.port}/api "
         f"(store {store.url}{', token required to compute' if config.token else ''})")
    # ws_per_message_deflate=False: the explorer's websocket carries binary arrays (the
    # map's view), which deflate barely shrinks at a cost of ~60 ms a view on loopback
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning",
                timeout_graceful_shutdown=5, ws_per_message_deflate=False)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

