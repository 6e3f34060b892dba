"""The HTTP JSON API: evaluate a point, submit grids, read stored datasets.

A thin adapter. Parameters go through :func:`phasemap.evaluate` / :meth:`GridSpec.from_dict`
(the one validation path) and every :class:`~phasemap.errors.ParameterError` becomes a 422
answer whose body is ``ParameterError.as_dict()`` (``param``, ``value``, ``allowed``,
``message``). Points and slices of stored datasets are read lazily with the library's query
helpers (:func:`phasemap.query.point_record`, :func:`~phasemap.query.select_slice`,
:func:`~phasemap.query.write_slice`), whose errors are restated in HTTP's words (query keys,
``interp=true``). Dataset ids are the store's content-addressed ids, checked
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
from ..errors import ParameterError, PhasemapError, StoreError
from ..grid import GridSpec
from ..models import available_models, get_model
from ..query import point_record, select_slice, slice_points, write_slice
from ..store import Store
from .config import ServiceConfig
from .jobs import JobManager
from .limits import spec_from_request

ID_PATTERN = r"^[A-Za-z0-9]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)

#: Documentation of the query parameters that name a model's parameters (any of them).
MODEL_QUERY = ("and any parameter of the model as a query parameter, e.g. `eps=-15&T=7.5` "
               "(the model's parameter names come from the registry, GET /api/models)")

IMMUTABLE = "public, max-age=31536000, immutable"
#: Dataset attributes never sent over HTTP (the store's location).
PRIVATE_ATTRS = ("store",)

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
            obj = np.where(np.isfinite(obj), obj, np.array(None, dtype=object))
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
    """An answer other than 2xx with a JSON body ``{"error": code, "message": ..., **extra}``.

    ``http_status`` is the HTTP status; ``extra`` adds fields to the body (a job's
    ``status``, say), so no body field can collide with an argument.
    """

    def __init__(self, http_status: int, code: str, message: str,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message = http_status, code, message
        self.headers = headers or {}
        self.extra = extra


#: HTTP status and error code of phasemap's error classes, most specific first (looked up
#: along the class's MRO, by class name so that error types the store adds later map without
#: an import here). A class may also declare ``http_status`` and ``http_code`` itself.
ERROR_STATUS: dict[str, tuple[int, str]] = {
    "DatasetNotFound": (404, "not_found"),
    "NotFound": (404, "not_found"),
    "QuotaExceeded": (507, "quota_exceeded"),
    "StoreFull": (507, "quota_exceeded"),
    "ParameterError": (422, "invalid_parameter"),
    "StoreCorrupted": (409, "store_damaged"),
    "ShardMissing": (409, "store_damaged"),
    "StoreBusy": (503, "busy"),
    "StoreError": (409, "not_ready"),
    "PhasemapError": (500, "error"),
}


def error_status(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error code of a phasemap error, by class (see :data:`ERROR_STATUS`)."""
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return status, str(getattr(exc, "http_code", "error"))
    for cls in type(exc).__mro__:
        if cls.__name__ in ERROR_STATUS:
            return ERROR_STATUS[cls.__name__]
    return 500, "error"


def scrub(text: str, store: Store | None) -> str:
    """``text`` with the store's location (URL, path, resolved path) replaced by ``<store>``:
    HTTP answers never tell a client where the server keeps its files."""
    if store is None:
        return text
    import os

    names = {str(store.url), str(store.url).removeprefix("file://")}
    for name in list(names):
        if "://" not in name:
            names |= {os.path.abspath(name), os.path.realpath(name)}
    for name in sorted((n for n in names if len(n) > 1), key=len, reverse=True):
        text = text.replace(name, "<store>")
    return text


def http_words(exc: ParameterError, path: str = "") -> ParameterError:
    """A library error restated in HTTP's words: query keys, not options; ``interp=true``
    where the point endpoint can interpolate; no validator phrasing."""
    from ..query import MissingCoordinates, OffGrid, plain_words

    exc = plain_words(exc)
    if isinstance(exc, OffGrid) and path.endswith("/point"):
        return ParameterError(exc.param, exc.value,
                              exc.allowed + "; add interp=true to interpolate", exc.detail)
    if isinstance(exc, MissingCoordinates):
        return ParameterError(exc.param, None, "a value for every dimension of the dataset: "
                                               f"give {', '.join(exc.missing)} too")
    return exc


def _parameter_body(exc: ParameterError, code: str = "invalid_parameter") -> dict[str, Any]:
    return {"error": code, **exc.as_dict()}


def install_error_handlers(app: FastAPI, store: Store | None = None) -> None:
    """422 for bad input (FastAPI's own checks included), JSON bodies for every error, a
    status by class for the other phasemap errors; no error answer is cacheable and none
    names the store's location."""
    no_store = {"Cache-Control": "no-store"}

    @app.exception_handler(ParameterError)
    async def _param(request: Request, exc: ParameterError):
        status, code = error_status(exc)
        exc = http_words(exc, request.url.path)
        body = _parameter_body(exc, code if status != 422 else "invalid_parameter")
        body["message"] = scrub(body["message"], store)
        body["value"] = scrub(str(body["value"]), store)
        return SafeJSONResponse(body, status_code=status, headers=no_store)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        from ..query import plain_words

        errors = exc.errors()
        err = errors[0] if errors else {"loc": ("request",), "msg": "invalid request"}
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body",
                                                               "header")]
        param = ".".join(loc) or "request"
        kind = str(err.get("type", ""))
        ctx = err.get("ctx")
        max_length = ctx.get("max_length", "?") if isinstance(ctx, dict) else "?"
        allowed = {"float_parsing": "a number", "float_type": "a number",
                   "bool_parsing": "true or false", "missing": "a value (it is required)",
                   "string_pattern_mismatch": "an id of letters and digits, as listed by "
                                              "GET /api/datasets",
                   "string_too_long": f"at most {max_length} characters",
                   "literal_error": str(err.get("msg", ""))}.get(kind, str(err.get("msg", "")))
        body = _parameter_body(plain_words(ParameterError(param, err.get("input"), allowed)))
        return SafeJSONResponse(body, status_code=422, headers=no_store)

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        return SafeJSONResponse({"error": exc.code, "message": scrub(exc.message, store),
                                 **exc.extra},
                                status_code=exc.status, headers={**no_store, **exc.headers})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return SafeJSONResponse({"error": code, "message": str(exc.detail)},
                                status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(PhasemapError)
    async def _phasemap(request: Request, exc: PhasemapError):
        status, code = error_status(exc)
        headers = {**no_store, **({"Retry-After": "5"} if status in (429, 503) else {})}
        return SafeJSONResponse({"error": code, "message": scrub(str(exc), store)},
                                status_code=status, headers=headers)


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


def describe_model(name: str) -> dict[str, Any]:
    """A JSON-ready description of a registered model."""
    m = get_model(name)

    def bound(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {
        "version": m.version, "description": m.description, "references": m.references,
        "parameters": [{"name": p.name, "units": p.units, "default": p.default,
                        "lower": bound(p.lower), "upper": bound(p.upper),
                        "lower_open": p.lower_open, "symbol": p.attrs()["symbol"],
                        "long_name": p.attrs()["long_name"]} for p in m.parameters],
        "constraints": [c.allowed for c in m.constraints],
        "outputs": [{"name": o, "dtype": m.output(o).dtype,
                     **({"flags": list(m.output(o).flags)} if m.output(o).is_label
                        else {"units": m.output(o).units}),
                     "long_name": m.output(o).long_name, "symbol": m.output(o).symbol or o}
                    for o in m.outputs],
    }


def _model_query(request: Request, model, extra: tuple[str, ...]) -> dict[str, float]:
    """The model's parameters named in the query string, as finite floats.

    Keys are checked against ``model``'s parameter names (from the registry, so a user's
    model is queried like any other) and the endpoint's own keys ``extra``; anything else is
    refused (FastAPI would silently ignore it).
    """
    names = model.param_names
    values: dict[str, float] = {}
    for key, raw in request.query_params.multi_items():
        if key in extra:
            continue
        if key not in names:
            raise ParameterError(key, raw, "one of the query parameters "
                                           f"{', '.join((*names, *extra))}")
        if key in values:
            raise ParameterError(key, raw, "one value per parameter")
        try:
            value = float(raw)
        except ValueError:
            raise ParameterError(key, raw, "a number") from None
        if not math.isfinite(value):
            raise ParameterError(key, raw, "a finite number")
        values[key] = value
    return values


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

    @router.get("/models", summary="The registered models: parameters and outputs")
    def models() -> Response:
        """Every model's parameters (units, default, range) and outputs (units, long name,
        dtype, label flags), as the registry declares them: what a grid spec, a point or a
        slice may name."""
        return SafeJSONResponse({name: describe_model(name) for name in available_models()},
                                headers={"Cache-Control": "no-cache"})

    @router.get("/health", summary="Liveness and a few counters")
    def health(request: Request) -> dict[str, Any]:
        sessions = getattr(request.app.state, "explorer_sessions", None)
        warm = getattr(request.app.state, "warm", None)
        return {"status": "ok", "version": __version__,
                "warm": bool(warm is not None and warm.is_set()),
                "datasets": len(store.requests()),
                "jobs_running": jobs.running(), "dask_started": jobs.client_started,
                "explorer_sessions": sessions() if sessions else None}

    @router.get("/evaluate", summary="Every output and both labels at one point",
                description="Query: `model` " + MODEL_QUERY + ".")
    def evaluate(request: Request,
                 model: Annotated[str, Query(max_length=64)] = "single_level"
                 ) -> dict[str, Any]:
        """Parameters not given take the model's defaults (GET /api/models lists them)."""
        import phasemap

        m = get_model(model)
        given = _model_query(request, m, ("model",))
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
        spec = spec_from_request(data, max_points=config.max_grid_points,
                                 max_chunk_points=config.max_chunk_points)
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

    @router.get("/grids/{id}/point", summary="Values and both labels at a grid point",
                description="Query: `interp` " + MODEL_QUERY + ".")
    def grid_point(request: Request, id: Annotated[str, Path(pattern=ID_PATTERN)],
                   interp: bool = False) -> Response:
        """Give a value for every dimension of the dataset (a grid value unless
        ``interp=true``); fixed parameters may be given and must then match."""
        ds = _open_done(store, jobs, datasets, id)
        at = _model_query(request, get_model(ds.attrs["model"]), ("interp",))
        etag = etag_of(id, request)
        if _not_modified(request, etag):
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
        record = {"id": id, **point_record(ds, at, interp)}
        return SafeJSONResponse(record, headers={"ETag": etag, "Cache-Control": IMMUTABLE})

    @router.get("/grids/{id}/slice", summary="A slice of a dataset as JSON or NetCDF",
                responses={200: {"content": {"application/json": {},
                                             "application/x-netcdf": {}}}})
    def grid_slice(request: Request, id: Annotated[str, Path(pattern=ID_PATTERN)],
                   format: Literal["json", "netcdf"] = "json",
                   vars: Annotated[str | None, Query(max_length=200, description=(
                       "comma-separated variables (default all)"))] = None) -> Response:
        """Fix some dimensions at grid values; the others are returned whole (at most
        ``max_slice_points`` points). JSON is xarray's ``Dataset.to_dict`` layout (NaN as
        null); NetCDF is the file ``phasemap query --slice --out F.nc`` writes."""
        ds = _open_done(store, jobs, datasets, id)
        fixed = _model_query(request, get_model(ds.attrs["model"]), ("format", "vars"))
        etag = etag_of(id, request)
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        names = list(ds.data_vars)
        if vars:
            names = [v.strip() for v in vars.split(",") if v.strip()]
            for v in names:
                if v not in ds.data_vars:
                    raise ParameterError("vars", v, "variables of the dataset: "
                                                    f"{', '.join(map(str, ds.data_vars))}")
        sub = select_slice(ds[names], fixed)
        # where the server keeps its files is nobody's business (the CLI's files keep it)
        sub.attrs = {k: v for k, v in sub.attrs.items() if k not in PRIVATE_ATTRS}
        points = slice_points(sub)
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
    except FileNotFoundError:
        datasets.forget(rid)
        raise APIError(409, "not_ready", f"dataset {rid} cannot be read: a file of it is "
                                         "missing in the store") from None
    except StoreError:
        datasets.forget(rid)
        raise
