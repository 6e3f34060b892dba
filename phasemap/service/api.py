"""The HTTP JSON API: evaluate a point, submit grids, read stored datasets.

A thin adapter. Parameters go through :func:`phasemap.evaluate` / :meth:`GridSpec.from_dict`
(the one validation path) and every :class:`~phasemap.errors.ParameterError` becomes a 422
answer whose body is ``ParameterError.as_dict()`` (``param``, ``value``, ``allowed``,
``message``). Points and slices of stored datasets are read lazily with the CLI's own helpers
(:func:`phasemap.cli.point_record`, :func:`~phasemap.cli.select_slice`,
:func:`~phasemap.cli.write_slice`). Dataset ids are the store's content-addressed ids, checked
against ``[A-Za-z0-9]{1,64}`` and the store's list before anything is read, so nothing a client
sends names a path. Reads of a finished dataset never change, so they carry an ``ETag`` and a
long ``Cache-Control``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

import numpy as np
import xarray as xr
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import GridTooLargeError, ParameterError, PhasemapError, StoreError
from ..grid import GridSpec
from ..models import get_model
from ..store import Store
from .config import ServiceConfig
from .jobs import JobManager

ID_PATTERN = r"^[A-Za-z0-9]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)

#: Query keys of the single-dot models (the only ones a point or slice can name).
PARAMS = ("eps", "T", "dT", "dV", "mu", "gamma_L", "gamma_R")
#: Variables a slice may return.
SLICE_VARIABLES = ("J_L", "Q_L", "Q_R", "P", "s", "p1", "regime", "machine")

IMMUTABLE = "public, max-age=31536000, immutable"

#: One NetCDF (HDF5) writer at a time in this process: HDF5 is not thread-safe.
NETCDF_LOCK = threading.Lock()


# --- JSON --------------------------------------------------------------------------------

def jsonable(obj: Any) -> Any:
    """``obj`` with numpy types made plain and non-finite floats made ``None`` (JSON null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f" and not np.isfinite(obj).all():
            obj = np.where(np.isfinite(obj), obj, None)
        elif obj.dtype.kind not in "fiub":
            return jsonable(obj.tolist())
        return obj.tolist()  # plain floats, ints, bools and None: nothing left to convert
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


class SafeJSONResponse(JSONResponse):
    """JSON without NaN/Infinity literals (which are not JSON)."""

    def render(self, content: Any) -> bytes:
        try:  # plain JSON-able content goes straight to the C encoder
            return json.dumps(content, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError):
            return json.dumps(jsonable(content), ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8")


class APIError(Exception):
    """An answer other than 2xx with a JSON body ``{"error": code, "message": ...}``."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra


def _parameter_body(exc: ParameterError) -> dict[str, Any]:
    return {"error": "invalid_parameter", **exc.as_dict()}


def install_error_handlers(app: FastAPI) -> None:
    """422 for bad input (FastAPI's own checks included), JSON bodies for every error."""

    @app.exception_handler(ParameterError)
    async def _param(request: Request, exc: ParameterError):
        return SafeJSONResponse(_parameter_body(exc), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        err = errors[0] if errors else {"loc": ("request",), "msg": "invalid request"}
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body",
                                                               "header")]
        param = ".".join(loc) or "request"
        kind = str(err.get("type", ""))
        allowed = {"float_parsing": "a number", "float_type": "a number",
                   "bool_parsing": "true or false", "missing": "a value (it is required)",
                   "string_pattern_mismatch": "an id of letters and digits, as listed by "
                                              "GET /api/datasets",
                   "literal_error": str(err.get("msg", ""))}.get(kind, str(err.get("msg", "")))
        body = _parameter_body(ParameterError(param, err.get("input"), allowed))
        return SafeJSONResponse(body, status_code=422)

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        return SafeJSONResponse({"error": exc.code, "message": exc.message, **exc.extra},
                                status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return SafeJSONResponse({"error": code, "message": str(exc.detail)},
                                status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError):
        return SafeJSONResponse({"error": "not_ready", "message": str(exc)}, status_code=409)


# --- reading stored datasets -------------------------------------------------------------

class DatasetCache:
    """Lazily opened stored datasets, by id (content-addressed, so safe to keep open)."""

    def __init__(self, store: Store, size: int = 32):
        self.store = store
        self.size = size
        self._lock = threading.Lock()
        self._open: OrderedDict[str, xr.Dataset] = OrderedDict()

    def open(self, rid: str) -> xr.Dataset:
        with self._lock:
            ds = self._open.get(rid)
            if ds is not None:
                self._open.move_to_end(rid)
                return ds
        ds = self.store.open(rid)
        with self._lock:
            self._open[rid] = ds
            while len(self._open) > self.size:
                self._open.popitem(last=False)
        return ds

    def forget(self, rid: str) -> None:
        with self._lock:
            self._open.pop(rid, None)


def check_id(rid: str) -> str:
    """``rid`` if it looks like a dataset id (letters and digits only), else a 422."""
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        raise ParameterError("id", rid, "an id of letters and digits, as listed by "
                                        "GET /api/datasets")
    return rid


def _known(store: Store, jobs: JobManager, rid: str) -> dict[str, Any] | None:
    """The store's record of ``rid`` (None if only a job knows it); 404 if nobody does."""
    check_id(rid)
    try:
        return store.request(rid)
    except ParameterError:
        if jobs.get(rid) is None:
            raise APIError(404, "not_found", f"no dataset {rid!r} in the store; "
                                             "see GET /api/datasets") from None
        return None


def _query(request: Request, allowed: tuple[str, ...]) -> None:
    """Refuse query keys that are not ``allowed`` (FastAPI would silently ignore them)."""
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            raise ParameterError(key, value, f"one of the query parameters "
                                             f"{', '.join(allowed)}")


def etag_of(rid: str, request: Request) -> str:
    """Strong ETag of a read: dataset id, canonical query and phasemap version."""
    query = sorted(request.query_params.multi_items())
    blob = json.dumps([rid, request.url.path, query, __version__])
    return '"' + hashlib.sha256(blob.encode()).hexdigest()[:32] + '"'


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    return any(tag.strip() in (etag, "*", "W/" + etag) for tag in header.split(","))


# --- the router --------------------------------------------------------------------------

def _grid_spec_schema() -> dict[str, Any]:
    """GridSpec's JSON schema with its ``$defs`` inlined (OpenAPI has no ``$defs``)."""
    schema = GridSpec.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    schema = inline(schema)
    schema["example"] = {"model": "single_level", "name": "small ANM map",
                         "axes": {"eps": {"start": -20, "stop": 20, "num": 81},
                                  "dV": {"start": -10, "stop": 10, "num": 41},
                                  "T": 7.5, "dT": 5}}
    return schema


Float = Annotated[float | None, Query()]
#: The compute token, read from ``Authorization: Bearer <token>``.
BEARER = HTTPBearer(auto_error=False,
                    description="Needed for POST /api/grids when the server has a token.")


def build_router(config: ServiceConfig, store: Store, jobs: JobManager,
                 datasets: DatasetCache) -> APIRouter:
    router = APIRouter(prefix="/api", default_response_class=SafeJSONResponse)

    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                             Depends(BEARER)]) -> None:
        if not config.token:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise APIError(401, "unauthorized", "this server needs 'Authorization: Bearer "
                                                "<token>' to compute grids",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode(), config.token.encode()):
            raise APIError(403, "forbidden", "the token is not valid for this server")

    @router.get("/health", summary="Liveness and a few counters")
    def health(request: Request) -> dict[str, Any]:
        sessions = getattr(request.app.state, "explorer_sessions", None)
        return {"status": "ok", "version": __version__,
                "datasets": len(store.list_blobs("requests")),
                "jobs_running": jobs.running(), "dask_started": jobs.client_started,
                "explorer_sessions": sessions() if sessions else None}

    @router.get("/evaluate", summary="Every output and both labels at one point")
    def evaluate(request: Request, eps: Float = None, T: Float = None, dT: Float = None,
                 dV: Float = None, mu: Float = None, gamma_L: Float = None,
                 gamma_R: Float = None,
                 model: Annotated[str, Query(max_length=64)] = "single_level"
                 ) -> dict[str, Any]:
        """Parameters not given take the model's defaults (``eps=0, T=7.5, dT=0, dV=0,
        mu=0, gamma_L=gamma_R=2``)."""
        import phasemap

        from ..cli import point_record

        _query(request, (*PARAMS, "model"))
        m = get_model(model)
        given = {k: v for k, v in dict(eps=eps, T=T, dT=dT, dV=dV, mu=mu, gamma_L=gamma_L,
                                        gamma_R=gamma_R).items() if v is not None}
        ds = phasemap.evaluate(m.name, **given)
        record: dict[str, Any] = {"model": m.name}
        record.update({name: float(ds[name]) for name in m.param_names})
        record.update(point_record(ds, {}))
        return record

    @router.post("/grids", status_code=202, summary="Compute a grid in the background",
                 dependencies=[Depends(require_token)],
                 responses={200: {"description": "Already computed"},
                            202: {"description": "Accepted; poll GET /api/grids/{id}"},
                            401: {"description": "Token required"},
                            403: {"description": "Token not valid"},
                            413: {"description": "Body too large"},
                            422: {"description": "Invalid grid spec"}},
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": _grid_spec_schema()}}}})
    async def submit_grid(request: Request) -> Response:
        """Answer at once with ``{id, status}``; the grid computes on the server's Dask
        cluster. Identical submissions (same dataset id) share one computation."""
        raw = await request.body()
        try:
            data = json.loads(raw or b"null")
        except (ValueError, RecursionError):
            raise ParameterError("spec", raw[:80].decode("utf-8", "replace"),
                                 "a JSON object with model, params and axes") from None
        if not isinstance(data, dict):
            raise ParameterError("spec", data, "a JSON object with model, params and axes")
        _precheck_size(data, config.max_grid_points)
        spec = _parse_spec(data)
        job = await run_in_threadpool(jobs.submit, spec)
        body = {"id": job.id, "status": job.status, "url": f"/api/grids/{job.id}"}
        return SafeJSONResponse(body, status_code=200 if job.status == "done" else 202,
                                headers={"Location": f"/api/grids/{job.id}"})

    @router.get("/grids/{id}", summary="Status and progress of a grid")
    def grid_status(id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response:
        record = _known(store, jobs, id)
        job = jobs.get(id)
        if job is not None:
            body = job.as_dict()
            if record is not None and job.status != "done":
                body["status"] = "done"  # computed earlier (e.g. by another process)
        else:
            body = _record_status(store, record or {})
        return SafeJSONResponse(body, headers={"Cache-Control": "no-cache"})

    @router.get("/grids/{id}/point", summary="Values and both labels at a grid point")
    def grid_point(request: Request, id: Annotated[str, Path(pattern=ID_PATTERN)],
                   eps: Float = None, T: Float = None, dT: Float = None, dV: Float = None,
                   mu: Float = None, gamma_L: Float = None, gamma_R: Float = None,
                   interp: bool = False) -> Response:
        """Give a value for every dimension of the dataset (a grid value unless
        ``interp=true``); fixed parameters may be given and must then match."""
        from ..cli import point_record

        _query(request, (*PARAMS, "interp"))
        ds = _open_done(store, jobs, datasets, id)
        etag = etag_of(id, request)
        if _not_modified(request, etag):
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
        at = {k: v for k, v in dict(eps=eps, T=T, dT=dT, dV=dV, mu=mu, gamma_L=gamma_L,
                                    gamma_R=gamma_R).items() if v is not None}
        for name, value in at.items():
            if not math.isfinite(value):
                raise ParameterError(name, value, "a finite number")
        record = {"id": id, **point_record(ds, at, interp)}
        return SafeJSONResponse(record, headers={"ETag": etag, "Cache-Control": IMMUTABLE})

    @router.get("/grids/{id}/slice", summary="A slice of a dataset as JSON or NetCDF",
                responses={200: {"content": {"application/json": {},
                                             "application/x-netcdf": {}}}})
    def grid_slice(request: Request, id: Annotated[str, Path(pattern=ID_PATTERN)],
                   eps: Float = None, T: Float = None, dT: Float = None, dV: Float = None,
                   mu: Float = None, gamma_L: Float = None, gamma_R: Float = None,
                   format: Literal["json", "netcdf"] = "json",
                   vars: Annotated[str | None, Query(max_length=200, description=(
                       "comma-separated variables (default all)"))] = None) -> Response:
        """Fix some dimensions at grid values; the others are returned whole (at most
        ``max_slice_points`` points). JSON is xarray's ``Dataset.to_dict`` layout (NaN as
        null); NetCDF is the file ``phasemap query --slice --out F.nc`` writes."""
        from ..cli import select_slice, write_slice

        _query(request, (*PARAMS, "format", "vars"))
        ds = _open_done(store, jobs, datasets, id)
        etag = etag_of(id, request)
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        fixed = {k: v for k, v in dict(eps=eps, T=T, dT=dT, dV=dV, mu=mu, gamma_L=gamma_L,
                                       gamma_R=gamma_R).items() if v is not None}
        for name, value in fixed.items():
            if not math.isfinite(value):
                raise ParameterError(name, value, "a finite number")
        names = list(ds.data_vars)
        if vars:
            names = [v.strip() for v in vars.split(",") if v.strip()]
            for v in names:
                if v not in ds.data_vars:
                    raise ParameterError("vars", v, "variables of the dataset: "
                                                    f"{', '.join(map(str, ds.data_vars))}")
        scalar = {k: v for k, v in fixed.items() if k not in ds.dims}
        sub = select_slice(ds[names], {k: v for k, v in fixed.items() if k in ds.dims})
        for name, value in scalar.items():  # a fixed parameter may be named if it matches
            if name not in ds.coords or not math.isclose(float(ds[name]), value,
                                                         rel_tol=1e-9, abs_tol=1e-12):
                raise ParameterError(name, value, "a dimension of the dataset: "
                                                  f"{', '.join(map(str, ds.dims))}")
        points = int(np.prod([sub.sizes[d] for d in sub.dims])) if sub.dims else 1
        if points > config.max_slice_points:
            raise ParameterError("slice", f"{points:,} points",
                                 f"at most {config.max_slice_points:,} points: fix more of "
                                 f"the dimensions {', '.join(map(str, sub.dims))}")
        if format == "netcdf":
            sub = sub.compute()  # read from Zarr outside the lock
            with tempfile.TemporaryDirectory(prefix="phasemap-slice-") as tmp:
                path = FsPath(tmp) / f"{id}.nc"
                with NETCDF_LOCK:  # the HDF5 library crashes the process if used by two
                    write_slice(sub, path)  # threads at once
                data = path.read_bytes()
            headers["Content-Disposition"] = f'attachment; filename="{id}-slice.nc"'
            return Response(data, media_type="application/x-netcdf", headers=headers)
        sub = sub.compute()
        body = {"id": id, **sub.to_dict(data="array")}
        body["labels"] = {lens: list(_labels(lens)) for lens in ("regime", "machine")
                          if lens in sub}
        return SafeJSONResponse(body, headers=headers)

    @router.get("/datasets", summary="Datasets in the store and grids being computed")
    def list_datasets() -> Response:
        out = []
        seen = set()
        for r in sorted(store.requests(), key=lambda r: r.get("created", "")):
            seen.add(r["id"])
            out.append({"id": r["id"], "name": r["spec"].get("name"),
                        "model": r["spec"].get("model"), "dims": r["dims"],
                        "shape": r["shape"], "points": r.get("points"),
                        "created": r.get("created"), "status": "done"})
        for job in jobs.jobs():
            if job.id not in seen:
                out.append({"id": job.id, "name": job.spec.name, "model": job.spec.model,
                            "dims": list(job.spec.dims), "shape": list(job.spec.shape),
                            "points": job.spec.size, "created": None, "status": job.status})
        return SafeJSONResponse({"datasets": out}, headers={"Cache-Control": "no-cache"})

    return router


def _labels(lens: str) -> tuple[str, ...]:
    from ..regimes import LENSES

    return LENSES[lens]


def _precheck_size(data: dict[str, Any], limit: int) -> None:
    """Refuse a spec whose axes promise more than ``limit`` points *before* it is parsed
    (parsing builds every axis' coordinates, which a huge ``num`` would make costly).
    Anything malformed is left to :meth:`GridSpec.from_dict` to describe."""
    axes = data.get("axes")
    if not isinstance(axes, dict):
        return
    points = 1
    for value in axes.values():
        if isinstance(value, dict):
            num = value.get("num", 1)
            if isinstance(num, bool) or not isinstance(num, int | float) or not (
                    math.isfinite(num) and num >= 1):
                return
            points *= int(num)
        elif isinstance(value, list):
            points *= max(len(value), 1)
    if points > limit:
        raise GridTooLargeError("grid", f"{points:,} points",
                                f"at most {limit:,} points per grid on this server")


def _parse_spec(data: dict[str, Any]) -> GridSpec:
    """The spec through the one validation path; arithmetic failures on absurd numbers in
    it are reported as a bad spec too, never as a server error."""
    try:
        return GridSpec.from_dict(data)
    except PhasemapError:
        raise
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise ParameterError("spec", "(grid spec)", "a grid spec with finite, moderate "
                                                    "numbers", detail=str(exc)[:200]) from None


def _record_status(store: Store, record: dict[str, Any]) -> dict[str, Any]:
    """Status of a dataset computed before this server started (from the store's record)."""
    from ..store import plan

    shards = len(plan(GridSpec.from_dict(record["spec"]), store).needed)
    return {"id": record["id"], "status": "done", "name": record["spec"].get("name"),
            "dims": record["dims"], "shape": record["shape"], "points": record.get("points"),
            "progress": {"done_shards": shards, "total_shards": shards,
                         "points_computed": record.get("points_computed"), "fraction": 1.0},
            "submissions": 0, "computations": 0, "seconds": record.get("seconds"),
            "created": record.get("created")}


def _open_done(store: Store, jobs: JobManager, datasets: DatasetCache, rid: str) -> xr.Dataset:
    record = _known(store, jobs, rid)
    if record is None:
        job = jobs.get(rid)
        status = job.status if job else "unknown"
        raise APIError(409, "not_ready", f"dataset {rid} is {status}; poll GET /api/grids/{rid}",
                       status=status)
    try:
        return datasets.open(rid)
    except (StoreError, FileNotFoundError) as exc:
        datasets.forget(rid)
        raise APIError(409, "not_ready", f"dataset {rid} cannot be read: {exc}") from None
