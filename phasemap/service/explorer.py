"""The phase-map explorer: a Panel page served by the same process as the API.

Each browser session gets an :class:`Explorer`. Its controls come from the model registry
(:mod:`phasemap.models`): the lenses are the model's label outputs, the shown variables its
quantities, the form fields its parameters, symbols and units their declarations; the choices
themselves are pure functions in :mod:`phasemap.service.explorer_logic`.

Speed (issue #15): the Bokeh document of a session is built once; an interaction only
replaces the data of its sources (a change of lens: which column the image reads and the
colour map, no data; of the shown quantity: that one column, patched into the source).
Planes are read from the store once and kept decoded in a process-wide LRU
(:class:`PlaneCache`); what is sent is the window on screen at screen resolution, made of
stored points only (never averages, so label codes stay valid and the hover reports the
exact stored point under the cursor: a click picks the same point), and of those only the
labels, the domain mask and the shown quantity; the clicked point's record has every value.
Events are handled on the event loop without a thread hop when the plane is decoded; a
plane read runs in a thread. Pan and zoom happen in the browser; the window is re-sent
only when the view lacks extent or detail. While a redraw is pending the map is dimmed and
titled "updating…".
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import io
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import param
import xarray as xr

from ..errors import ParameterError, PhasemapError
from ..grid import GridSpec
from ..models import Model
from ..store import Store
from . import explorer_logic as logic
from .api import DatasetCache
from .config import ServiceConfig
from .jobs import Job, JobManager

#: Size of the map's plotting area [screen pixels].
FRAME_WIDTH, FRAME_HEIGHT = 640, 440
#: Stored points sent per axis at most (one per two screen pixels: ~70 k cells per view).
VIEW_PIXELS_X, VIEW_PIXELS_Y = FRAME_WIDTH // 2, FRAME_HEIGHT // 2
#: Decoded planes kept by the process [bytes].
PLANE_CACHE_BYTES = 768 * 2**20
#: Largest plane read whole from the store [points] (larger planes are refused with a
#: message: fix one more dimension).
MAX_PLANE_POINTS = 16_000_000
#: Diverging colour map (centred on 0) for signed quantities, sequential for the others.
DIVERGING = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
             "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f")
SEQUENTIAL = "Viridis256"  # a name in bokeh.palettes
#: Dash patterns of the threshold curves, in order.
DASHES = ("solid", "dashed", "dotted", "dashdot")
LINE_COLORS = ("#0077BB", "#CC3311", "#009988", "#EE7733", "#33BBEE", "#EE3377", "#000000")

_EXACT = "return (value == null || Number.isNaN(value)) ? 'NaN (outside the domain)' " \
         ": String(value);"
_LABEL = ("const k = Math.round(value); return (k >= 0 && k < names.length) ? names[k] : "
          "'outside the model\\'s domain';")
_COORD = ("const ix = special_vars.image_index; if (ix == null) return '?'; "
          "const c = source.data[axis === 'x' ? 'xs' : 'ys'][ix.index]; "
          "return String(c[axis === 'x' ? ix.i : ix.j]);")


# --- decoded planes -------------------------------------------------------------------------

@dataclass
class Plane:
    """One plane of a dataset, decoded: ``arrays[name]`` has shape ``(len(ys), len(xs))``."""

    xs: np.ndarray
    ys: np.ndarray
    arrays: dict[str, np.ndarray]
    invalid: np.ndarray
    nbytes: int = 0
    thresholds: dict[str, list[np.ndarray]] = field(default_factory=dict)
    #: The model's label outputs among ``arrays`` (sent with every view: legend and hover).
    labels: tuple[str, ...] = ()


class PlaneCache:
    """Decoded planes by (dataset, x, y, fixed values), least recently used dropped first.

    A plane is loaded once even when several threads ask for it at the same time (a session
    and the prefetcher, or two sessions): the later callers wait for the first one's load.
    """

    def __init__(self, max_bytes: int = PLANE_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Plane] = OrderedDict()
        self._loading: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: tuple, load: Callable[[], Plane]) -> Plane:
        while True:
            with self._lock:
                plane = self._items.get(key)
                if plane is not None:
                    self._items.move_to_end(key)
                    return plane
                pending = self._loading.get(key)
                if pending is None:
                    pending = self._loading[key] = threading.Event()
                    break
            pending.wait()  # another thread is loading it: take its plane (or retry)
        try:
            plane = load()
            with self._lock:
                self._items[key] = plane
                total = sum(p.nbytes for p in self._items.values())
                while total > self.max_bytes and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    total -= old.nbytes
            return plane
        finally:
            with self._lock:
                del self._loading[key]
            pending.set()


PLANES = PlaneCache()
#: Planes a prefetch may queue at most (the newest requests are kept).
PREFETCH_PENDING = 16


class Prefetcher:
    """Loads planes a session will likely ask for next into a :class:`PlaneCache`, in one
    background thread per process, newest requests first.

    After a view is drawn the session asks for the planes one slider step away from it
    (each slider's neighbouring values, the others unchanged): a slider step then finds its
    plane decoded. A plane a session asks for while it is being prefetched is not read
    twice (:meth:`PlaneCache.get` waits for the load in progress).
    """

    def __init__(self, cache: PlaneCache, pending: int = PREFETCH_PENDING):
        self.cache = cache
        self.pending = pending
        self._jobs: list[tuple[tuple, Callable[[], Plane]]] = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def want(self, jobs: list[tuple[tuple, Callable[[], Plane]]]) -> None:
        """Queue ``(key, load)`` pairs ahead of older requests (first ones first)."""
        with self._cv:
            fresh = [(k, f) for k, f in jobs if k not in self.cache]
            keys = {k for k, _ in fresh}
            self._jobs = (fresh + [j for j in self._jobs if j[0] not in keys])[:self.pending]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="phasemap-prefetch")
                self._thread.start()
            self._cv.notify()

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued (tests); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._jobs and not self._busy, timeout)

    _busy = False

    def _run(self) -> None:
        while True:
            with self._cv:
                self._busy = False
                self._cv.notify_all()
                if not self._cv.wait_for(lambda: bool(self._jobs), timeout=60.0):
                    self._thread = None
                    return
                key, load = self._jobs.pop(0)
                self._busy = True
            try:
                self.cache.get(key, load)
            except Exception:  # a neighbour that cannot be read is simply not prefetched
                traceback.print_exc()


PREFETCH = Prefetcher(PLANES)
#: One threshold tracing at a time in the process (root finding is CPU-bound).
_TRACE_LOCK = threading.Lock()


def model_of(ds: xr.Dataset) -> Model:
    from ..plot.boundaries import model_of as _model_of

    return _model_of(ds)


def read_plane(ds: xr.Dataset, model: Model, x: str, y: str, fixed: dict[str, float]
               ) -> Plane:
    """Every output of ``ds`` on the ``(x, y)`` plane at the ``fixed`` grid values."""
    outputs = [v for v in model.outputs if v in ds.data_vars]
    index = logic.slice_index({str(d): ds[d].values for d in ds.dims},
                              [str(d) for d in ds.dims], x, y, fixed)
    n = ds.sizes[x] * ds.sizes[y]
    if n > MAX_PLANE_POINTS:
        raise ParameterError("plane", f"{n:,} points", f"at most {MAX_PLANE_POINTS:,} points "
                             "on one map")
    sub = logic.read_slice(ds, x, y, fixed, outputs)
    arrays = {v: np.ascontiguousarray(sub[v].values) for v in outputs}
    xs = np.asarray(ds[x].values, dtype=np.float64)
    ys = np.asarray(ds[y].values, dtype=np.float64)
    params: dict[str, Any] = {x: xs[None, :], y: ys[:, None]}
    for name in model.param_names:
        if name in (x, y):
            continue
        if name in index and name in ds.dims:
            params[name] = float(ds[name].values[index[name]])
        elif name in ds.coords and ds[name].size == 1:
            params[name] = float(np.asarray(ds[name].values).ravel()[0])
    invalid = np.broadcast_to(logic.domain_mask(model, params), (ys.size, xs.size)).copy()
    for v in model.labels:
        if v in arrays:
            invalid |= arrays[v] < 0
    for v in model.labels:  # a label read from a masked point means nothing: code -1
        if v in arrays and invalid.any():
            arrays[v] = np.where(invalid, np.int8(-1), arrays[v]).astype(arrays[v].dtype)
    nbytes = sum(a.nbytes for a in arrays.values()) + invalid.nbytes
    return Plane(xs, ys, arrays, invalid, nbytes,
                 labels=tuple(v for v in model.labels if v in arrays))


@dataclass
class View:
    """What is sent for one view: the window's columns and how pixels map to points.

    ``data`` holds only what is drawn or hovered: the label codes (legend and hover), the
    domain mask, the pixel coordinates and the shown quantity, if any; any other column of
    the same window is cut from ``plane`` on demand (:meth:`column`)."""

    data: dict[str, list]
    ax: logic.ScreenAxis
    ay: logic.ScreenAxis
    plane: Plane | None = None

    def column(self, name: str) -> np.ndarray:
        """Output ``name`` on this view's pixels: the column sent, or cut from the plane
        exactly as :func:`make_view` cuts it (the same stored points)."""
        if name in self.data:
            return np.asarray(self.data[name][0])
        if self.plane is None:
            raise KeyError(name)
        return self.plane.arrays[name][np.ix_(self.ay.index, self.ax.index)]


def make_view(plane: Plane, window: tuple | None, pixels=(VIEW_PIXELS_X, VIEW_PIXELS_Y),
              columns: Any = None) -> View:
    """The columns of the image source for ``window`` ((x0, x1), (y0, y1)) or the whole
    plane: the label outputs, the mask, the pixel coordinates and the outputs named in
    ``columns`` (the shown quantity), nothing else (issue #15: a view used to carry every
    output, ~8x the bytes)."""
    ax = logic.screen_axis(plane.xs, window[0] if window else None, pixels[0])
    ay = logic.screen_axis(plane.ys, window[1] if window else None, pixels[1])
    rows, cols = np.ix_(ay.index, ax.index)
    names = list(dict.fromkeys([*plane.labels, *(columns or ())]))
    data: dict[str, list] = {name: [plane.arrays[name][rows, cols]] for name in names
                             if name in plane.arrays}
    data["masked"] = [plane.invalid[rows, cols].astype(np.int8)]
    data["xs"] = [plane.xs[ax.index]]
    data["ys"] = [plane.ys[ay.index]]
    data.update(x=[ax.lo], y=[ay.lo], dw=[ax.hi - ax.lo], dh=[ay.hi - ay.lo])
    return View(data, ax, ay, plane)


def covers(view: View, plane: Plane, window: tuple | None,
           pixels=(VIEW_PIXELS_X, VIEW_PIXELS_Y)) -> bool:
    """Whether ``view`` already shows ``window`` ((x0, x1), (y0, y1)) as well as a new view
    would (:func:`~phasemap.service.explorer_logic.view_suffices` on both axes), so that a
    pan or zoom to it needs no new data: the browser redraws what it has."""
    if window is None:
        return False
    return (logic.view_suffices(view.ax, plane.xs, window[0], pixels[0])
            and logic.view_suffices(view.ay, plane.ys, window[1], pixels[1]))


# --- the session ------------------------------------------------------------------------------

#: The paper's maps the explorer opens first, in order of preference (pipelines/paper/).
PAPER_MAPS = ("maps_eps_dV.yaml", "maps_eps_dT.yaml")


@functools.lru_cache(maxsize=1)
def paper_map_ids() -> tuple[str, ...]:
    """Dataset ids of :data:`PAPER_MAPS` (empty where the pipelines are not shipped)."""
    from ..query import load_spec
    from ..store import spec_id

    root = Path(__file__).resolve().parents[2] / "pipelines" / "paper"
    ids = []
    for name in PAPER_MAPS:
        if (root / name).is_file():
            try:
                ids.append(spec_id(load_spec(root / name)))
            except PhasemapError:
                traceback.print_exc()
    return tuple(ids)


def default_dataset(records: list[dict[str, Any]], preferred: tuple[str, ...] = ()
                    ) -> str | None:
    """The dataset the explorer opens when the URL names none: the first of ``preferred``
    (the paper's maps) in the store, else the map (two or more multi-valued dims) with the
    most points, else the dataset with the most points; ``None`` for an empty store."""
    ids = {r["id"] for r in records}
    for rid in preferred:
        if rid in ids:
            return rid
    if not records:
        return None
    maps = [r for r in records if sum(n > 1 for n in r["shape"]) >= 2]
    best = max(maps or records, key=lambda r: (int(r.get("points") or 0),
                                               str(r.get("created") or "")))
    return str(best["id"])


def mount_explorer(app, config: ServiceConfig, store: Store, jobs: JobManager,
                   datasets: DatasetCache, path: str = "/explorer") -> None:
    """Serve the explorer at ``path`` of the FastAPI ``app`` (Bokeh sessions over websockets)."""
    from panel.io.fastapi import add_applications

    # No Panel thread pool (``pn.config.nthreads``): a widget event is handled on the event
    # loop, where a view of a decoded plane is drawn at once with the document lock held
    # (every patch of it in one go). Reading a plane is what must not block the loop: the
    # session hands that to a thread of its own (:meth:`Explorer.request_draw`).

    def page():  # a plain function: Panel calls it once per browser session
        return explorer_page(config, store, jobs, datasets)

    bokeh_app = add_applications(
        {path: page}, app=app, title="phasemap explorer",
        websocket_origin=config.origins(),
        check_unused_sessions_milliseconds=max(500, min(17_000, config.session_lifetime_ms)),
        unused_session_lifetime_milliseconds=config.session_lifetime_ms,
    )

    def sessions() -> int:
        """Live explorer sessions (Bokeh discards unused ones after the lifetime)."""
        contexts = getattr(bokeh_app, "_applications", {}) or {}
        return sum(len(getattr(ctx, "sessions", ())) for ctx in contexts.values())

    app.state.explorer_sessions = sessions

    # Warm the explorer when the server starts (not when an app is merely built): its
    # thread starts before the service's own warm-up, so the kernels a page needs first
    # (the derive kernels of the store's read path) are compiled first.
    served = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a):
        threading.Thread(target=warm_explorer, args=(store, datasets), daemon=True,
                         name="phasemap-explorer-warm-up").start()
        async with served(a) as state:
            yield state

    app.router.lifespan_context = lifespan


def first_view_key(ds: xr.Dataset, model: Model, rid: str
                   ) -> tuple[tuple, str, str, dict[str, float]] | None:
    """The plane a new session shows first for dataset ``rid``: its cache key, axes and
    fixed values (the default axes, each slider at its middle value), as the session
    computes them; ``None`` for a dataset without two dimensions with several values."""
    sizes = {str(d): int(n) for d, n in ds.sizes.items()}
    x, y = logic.default_axes(sizes, model.param_names)
    if x is None or y is None:
        return None
    fixed = {}
    for d in logic.other_axes(sizes, x, y):
        values = [float(v) for v in np.asarray(ds[d].values)]
        fixed[d] = values[len(values) // 2]
    return (rid, x, y, tuple(sorted(fixed.items()))), x, y, fixed


def warm_explorer(store: Store, datasets: DatasetCache) -> None:
    """What the first page would otherwise wait for, done at server start: compile (or
    load from numba's cache) the derive kernel of every registered model that stores only
    part of its outputs (the store's read path, which every map goes through), then decode
    the plane the explorer opens first (the default dataset, its default axes and slider
    values) into :data:`PLANES`."""
    from ..models import available_models, get_model

    try:
        for name in available_models():
            model = get_model(name)
            if model.derive is not None and model.stored:
                model.derive({o: np.zeros(2) for o in model.stored}, **model.defaults())
        rid = default_dataset(store.requests(), paper_map_ids())
        if rid is None:
            return
        ds = datasets.open(rid)
        model = model_of(ds)
        first = first_view_key(ds, model, rid)
        if first is not None:
            key, x, y, fixed = first
            PLANES.get(key, partial(read_plane, ds, model, x, y, fixed))
    except Exception:  # the explorer still serves, the first page is only slower
        traceback.print_exc()


def explorer_page(config: ServiceConfig, store: Store, jobs: JobManager,
                  datasets: DatasetCache):
    """A new explorer for one browser session (called by Panel per session)."""
    return Explorer(config, store, jobs, datasets).layout


def _session_arg(name: str) -> str | None:
    """A query argument of the page's URL (``/explorer?dataset=<id>``), if any."""
    import panel as pn

    values = (pn.state.session_args or {}).get(name) or []
    if not values:
        return None
    value = values[0].decode("utf-8", "replace") if isinstance(values[0], bytes) else values[0]
    return value if value.isascii() and value.isalnum() else None


class ViewState(param.Parameterized):
    """What the session shows (the widgets write it; the drawing reads only this)."""

    dataset = param.String(default=None, allow_None=True)
    x = param.String(default=None, allow_None=True)
    y = param.String(default=None, allow_None=True)
    lens = param.String(default=None, allow_None=True)
    shown = param.String(default="labels")
    #: Off by default: tracing is root finding on the model for every new plane, CPU that a
    #: slider step on a small machine needs more (see docs/explorer.md).
    thresholds = param.Boolean(default=False)
    fixed = param.Dict(default={})
    along = param.String(default=None, allow_None=True)
    window = param.Parameter(default=None)
    tapped = param.Dict(default=None, allow_None=True)


class Explorer:
    """One session's explorer: widgets, the Bokeh document and the callbacks between them."""

    def __init__(self, config: ServiceConfig, store: Store, jobs: JobManager,
                 datasets: DatasetCache):
        import panel as pn

        self.config, self.store, self.jobs, self.datasets = config, store, jobs, datasets
        self.state = ViewState()
        self.ds: xr.Dataset | None = None
        self.model: Model | None = None
        self.plane: Plane | None = None
        self._plane_key: tuple | None = None
        self.view: View | None = None
        self.job: Job | None = None
        self._poll: Any = None
        self._quiet = False
        self._lock = threading.Lock()
        self._wanted = 0
        self._drawn = 0
        self._count_lock = threading.Lock()
        self._reset_pending = False
        self._doc = pn.state.curdoc
        self._built = False
        self._records: dict[str, dict] = {}

        w = pn.widgets
        self.dataset = w.Select(name="Dataset", options={}, width=300, css_classes=["pm-dataset"])
        self.refresh = w.Button(name="Refresh list", width=120)
        self.x = w.Select(name="Map x axis", options=[], width=145)
        self.y = w.Select(name="Map y axis", options=[], width=145)
        self.lens = w.RadioButtonGroup(name="Lens", options=[], button_type="default",
                                       width=300, css_classes=["pm-lens"])
        self.shown = w.Select(name="Shown variable", options=["labels"], value="labels",
                              width=145, css_classes=["pm-shown"])
        self.thresholds = w.Checkbox(name="threshold curves", value=False, width=145)
        self.along = w.Select(name="Line plot along", options=[], width=300,
                              css_classes=["pm-along"])
        self.sliders_box = pn.Column(sizing_mode="stretch_width")
        self.sliders: dict[str, Any] = {}
        self._slider_pool: dict[str, Any] = {}
        self._rebuilding = False
        self.fixed_pane = pn.pane.HTML("", width=300, css_classes=["phasemap-fixed"])
        self.message = pn.pane.Alert("", alert_type="light", visible=False, width=300)
        self.status = pn.pane.HTML("", css_classes=["phasemap-status"], width=300)
        self.legend = pn.pane.HTML("", css_classes=["phasemap-legend"], width=330)
        self.point_info = pn.pane.HTML("Click a point of the map to draw the lines through "
                                       "it.", width=700, css_classes=["phasemap-point"])
        self.exports = self._export_widgets()

        self._build_figures()
        self.map_pane = pn.pane.Bokeh(self.fig, css_classes=["phasemap-map"])
        self.line_pane = pn.pane.Bokeh(self.line_fig, css_classes=["phasemap-lines"])

        # the new-grid form: fields are made when a model is known (default single_level)
        self.form_model = w.Select(name="model", options=_model_names(), width=300,
                                   value=_default_model())
        self.form_box = pn.GridBox(ncols=2, width=310)
        self.form_inputs: dict[str, Any] = {}
        self.form_name = w.TextInput(name="name", value="", placeholder="optional", width=300)
        self.form_token = w.PasswordInput(name="token", width=300, visible=bool(config.token))
        self.form_submit = w.Button(name="Compute grid", button_type="primary", width=300)
        self.form_progress = pn.indicators.Progress(value=0, max=100, width=300,
                                                    visible=False, bar_color="info")
        self.form_status = pn.pane.Markdown("", width=300, css_classes=["phasemap-job"])
        self._build_form()
        form = pn.Card(
            pn.pane.Markdown("Each field: a value `7.5`, a range `start:stop:num` or a list "
                             "`2.5, 5`. Empty fields take the model's defaults.", width=300),
            self.form_model, self.form_box, self.form_name, self.form_token,
            self.form_submit, self.form_progress, self.form_status, title="New grid",
            collapsed=True, width=330)

        sidebar = pn.Column(
            pn.pane.Markdown("## phasemap explorer"), self.dataset, self.refresh,
            pn.Row(self.x, self.y), self.lens, pn.Row(self.shown, self.thresholds),
            self.sliders_box, self.along, self.message, self.status, self.exports, form,
            width=340)
        self.layout = pn.Row(sidebar, pn.Column(pn.Row(self.map_pane, self.legend),
                                                self.point_info, self.line_pane))

        for widget in (self.dataset, self.x, self.y, self.lens, self.shown, self.thresholds,
                       self.along):
            _undebounced(widget)
        self.refresh.on_click(lambda event: self.load_list())
        self.dataset.param.watch(lambda event: self._guard(self.open_dataset, event.new),
                                 "value")
        self.x.param.watch(lambda e: self._on_axis("x"), "value")
        self.y.param.watch(lambda e: self._on_axis("y"), "value")
        self.lens.param.watch(lambda e: self._on_style(), "value")
        self.shown.param.watch(lambda e: self._on_style(), "value")
        self.thresholds.param.watch(lambda e: self._on_style(), "value")
        self.along.param.watch(lambda e: None if self._quiet else self._guard(self.draw_lines),
                               "value")
        self.form_model.param.watch(lambda e: self._build_form(), "value")
        self.form_submit.on_click(lambda event: self.submit())
        self.load_list(select=_session_arg("dataset"))
        self._built = True

    # --- the Bokeh document (built once) ------------------------------------------------------
    def _build_figures(self) -> None:
        from bokeh.events import DoubleTap, PressUp, RangesUpdate, Tap
        from bokeh.models import ColumnDataSource, CustomJSHover, HoverTool, LinearColorMapper
        from bokeh.models.annotations import ColorBar, Legend, Span
        from bokeh.models.ranges import Range1d
        from bokeh.plotting import figure

        # "masked" is in every view: the image reads it whenever the shown column may be
        # missing (before the first view, while the data of another model arrives)
        self.source = ColumnDataSource(data={"masked": [], "x": [], "y": [], "dw": [],
                                             "dh": [], "xs": [], "ys": []})
        self.mapper = LinearColorMapper(palette=list(DIVERGING), low=-1, high=1,
                                        nan_color=logic.MASK_COLOR)
        fig = figure(name="phasemap-map", frame_width=FRAME_WIDTH, frame_height=FRAME_HEIGHT,
                     x_range=Range1d(start=0, end=1), y_range=Range1d(start=0, end=1),
                     tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom",
                     toolbar_location="above", title="", tags=[0])
        fig.grid.visible = False
        self._title_model: Any = fig.title
        placed: dict[str, Any] = {"x": "x", "y": "y", "dw": "dw", "dh": "dh",
                                  "source": self.source, "color_mapper": self.mapper}
        self.image = fig.image(image="masked", **placed)
        self.mask_mapper = LinearColorMapper(palette=["rgba(0,0,0,0)", logic.MASK_COLOR],
                                             low=0, high=1)
        self.mask_image = fig.image(image="masked",
                                    **{**placed, "color_mapper": self.mask_mapper})
        self.colorbar = ColorBar(color_mapper=self.mapper, visible=False, width=14,
                                 title_text_font_style="normal")
        fig.add_layout(self.colorbar, "right")
        self.threshold_sources = []
        self.threshold_renderers = []
        for dash in DASHES:
            src = ColumnDataSource(data={"xs": [], "ys": []})
            r = fig.multi_line("xs", "ys", source=src, line_color="#111111", line_width=2,
                               line_dash=dash)
            self.threshold_sources.append(src)
            self.threshold_renderers.append(r)
        self.tap_source = ColumnDataSource(data={"x": [], "y": []})
        fig.scatter("x", "y", source=self.tap_source, marker="circle_cross", size=16,
                    fill_color=None, line_color="#ffffff", line_width=3)
        fig.scatter("x", "y", source=self.tap_source, marker="circle_cross", size=16,
                    fill_color=None, line_color="#000000", line_width=1.2)
        self.formatters: dict[str, Any] = {
            "xs": CustomJSHover(args={"source": self.source, "axis": "x"}, code=_COORD),
            "ys": CustomJSHover(args={"source": self.source, "axis": "y"}, code=_COORD),
            "exact": CustomJSHover(code=_EXACT),
        }
        self.hover = HoverTool(renderers=[self.mask_image], tooltips="", formatters={})
        fig.add_tools(self.hover)
        # A click is a Tap, but Bokeh reports a second click within 300 ms of the previous
        # one as a DoubleTap only, and a button held over 300 ms (a slow click, or a busy
        # browser) as a Press/PressUp only: each of them picks the point under it, so that
        # no click is lost.
        for kind in (Tap, DoubleTap, PressUp):
            fig.on_event(kind, self._on_tap)
        fig.on_event(RangesUpdate, self._on_ranges)
        # The browser redraws pans and zooms itself; it reports the new ranges (RangesUpdate)
        # once the gesture has been still for ``lod_timeout`` ms: the debounce of refetches.
        fig.lod_interval, fig.lod_timeout = 100, 60
        self.fig = fig

        lf = figure(name="phasemap-lines", frame_width=FRAME_WIDTH, frame_height=230,
                    tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above")
        lf.add_layout(Legend(click_policy="hide"), "right")
        self.crosshair = Span(location=0, dimension="height", line_color="#000000",
                              line_dash="dashed", line_width=1.5, visible=False,
                              name="crosshair")
        lf.add_layout(self.crosshair)
        lf.add_layout(Span(location=0, dimension="width", line_color="#999999",
                           line_width=1))
        self.line_renderers: dict[str, Any] = {}
        self.line_marks = ColumnDataSource(data={"x": [], "y": [], "color": []})
        lf.scatter("x", "y", source=self.line_marks, size=9, color="color",
                   name="crosshair-marks")
        lf.visible = False
        self.line_fig = lf

    def _apply(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (which changes Bokeh models) on the session's event loop: directly
        while the page is being built or when called on the loop, else on its next tick."""
        if not self._built or self._doc is None or _on_event_loop():
            fn()
        else:
            self._doc.add_next_tick_callback(fn)

    # --- helpers ---------------------------------------------------------------------------
    def _m(self) -> Model:
        if self.model is None:
            raise PhasemapError("no dataset is open")
        return self.model

    def _d(self) -> xr.Dataset:
        if self.ds is None:
            raise PhasemapError("no dataset is open")
        return self.ds

    def say(self, text: str, kind: str = "danger") -> None:
        self.message.object = text
        self.message.alert_type = kind  # type: ignore[assignment]
        self.message.visible = bool(text)

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except PhasemapError as exc:
            self.say(str(exc))
        except Exception as exc:  # keep the page alive; the server log has the details
            traceback.print_exc()
            self.say(f"{type(exc).__name__}: {exc}")
        return None

    def _label(self, name: str, html: bool = False) -> str:
        attrs = dict(self._d()[name].attrs) if self.ds is not None and name in self.ds else {}
        if self.model is not None and not attrs:
            attrs = self._m().attrs_of(name)
        return logic.quantity_label(attrs, name, html=html)

    # --- datasets --------------------------------------------------------------------------
    def load_list(self, select: str | None = None) -> None:
        options = {}
        maps = []  # datasets with two or more multi-valued dims: a map to show first
        records = sorted(self.store.requests(), key=lambda r: r.get("created", ""))
        for r in records:
            options[logic.describe_dataset(r)] = r["id"]
            self._records[r["id"]] = r
            if sum(n > 1 for n in r["shape"]) >= 2:
                maps.append(r["id"])
        current = select or self.dataset.value
        self.dataset.options = options
        if not options:
            self.say("The store holds no dataset yet: state a grid under 'New grid'.", "info")
            return
        ids = list(options.values())
        # the paper's map first, else the largest map: never simply the newest dataset
        target = current if current in ids else (default_dataset(records, paper_map_ids())
                                                  or (maps or ids)[-1])
        if self.dataset.value != target:
            self.dataset.value = target  # triggers open_dataset
        elif self.ds is None or self.state.dataset != target:
            self._guard(self.open_dataset, target)

    def open_dataset(self, rid: str | None) -> None:
        if not rid:
            return
        if self._doc is not None and self._built and _on_event_loop():
            from panel.io.document import hold

            # a switch changes ~30 properties of widgets, sliders, line plot and map: one
            # combined patch, one layout pass in the browser, instead of one per property
            with hold(self._doc, policy="combine"):
                self._open_dataset(rid)
        else:
            self._open_dataset(rid)

    def _open_dataset(self, rid: str) -> None:
        if not _on_event_loop():  # on the loop the new view leaves with these patches
            self._set_busy()
        ds = self.datasets.open(rid)
        self.say("")
        model = model_of(ds)
        self.ds, self.model = ds, model
        sizes = {str(d): int(n) for d, n in ds.sizes.items()}
        multi = logic.multi_dims(sizes)
        x, y = logic.default_axes(sizes, model.param_names)
        labels = [v for v in model.labels if v in ds.data_vars]
        quantities = [v for v in model.quantities if v in ds.data_vars]
        self._quiet = True
        try:
            self.x.options, self.y.options, self.along.options = multi, multi, multi
            self.x.value, self.y.value, self.along.value = x, y, x
            self.lens.options = labels
            if labels:
                self.lens.value = self.lens.value if self.lens.value in labels else labels[0]
            self.shown.options = {"labels": "labels",
                                  **{self._label(q): q for q in quantities}}
            if self.shown.value not in ["labels", *quantities]:
                self.shown.value = "labels"
            if not labels and quantities:
                self.shown.value = quantities[0]
        finally:
            self._quiet = False
        self.state.param.update(dataset=rid, x=x, y=y, along=x, tapped=None, window=None,
                                lens=self.lens.value or None, shown=self.shown.value)
        self.draw_lines()
        self.build_sliders()
        self.request_draw(reset_range=True)

    def build_sliders(self) -> None:
        """One slider per dimension off the map; the session keeps its slider widgets (and
        the "Fixed" line) and reuses them for the next dataset with the same dimension
        names, so a dataset switch updates widgets instead of building new ones."""
        import panel as pn

        self.sliders = {}
        items: list[Any] = []
        ds = self.ds
        if ds is None:
            self.sliders_box.objects = []
            return
        fixed_text = []
        self._rebuilding = True
        try:
            for d in ds.dims:
                d = str(d)
                if d in (self.state.x, self.state.y):
                    continue
                values = [float(v) for v in np.asarray(ds[d].values)]
                label = self._label(d)
                if len(values) == 1:
                    fixed_text.append(f"{label.split(' [')[0]} = {values[0]:g}")
                    continue
                old = self.state.fixed.get(d)
                value = old if old in values else values[len(values) // 2]
                slider = self._slider_pool.get(d)
                if slider is None:
                    slider = pn.widgets.DiscreteSlider(name=label, options=values, value=value,
                                                       width=290, css_classes=[f"slider-{d}"])
                    slider.param.watch(self._on_slider, "value")
                    self._slider_pool[d] = slider
                else:
                    slider.param.update(name=label, options=values, value=value)
                _undebounced(slider)
                self.sliders[d] = slider
                items.append(slider)
        finally:
            self._rebuilding = False
        for name in (self._m().param_names if self.model else ()):
            if name not in ds.dims and name in ds.coords and ds[name].size == 1:
                fixed_text.append(f"{self._label(name).split(' [')[0]} = "
                                  f"{float(ds[name]):g}")
        if fixed_text:
            self.fixed_pane.object = "Fixed: " + ", ".join(fixed_text)
            items.append(self.fixed_pane)
        if [id(o) for o in self.sliders_box.objects] != [id(o) for o in items]:
            self.sliders_box.objects = items
        self.state.fixed = {d: float(s.value) for d, s in self.sliders.items()}

    def _hover_spec(self, shown: str | None) -> tuple[str, dict[str, Any]]:
        """The hover's template and formatters for the view's columns: the stored point's
        coordinates, the shown quantity (if a quantity is shown) and every label, all
        exact (shortest round-trip decimal of the stored float). The point's other values
        are in its record under the map, on click."""
        from bokeh.models import CustomJSHover

        st, model = self.state, self._m()
        rows = [(self._label(st.x, html=True) if st.x else "x", "$x{custom}"),
                (self._label(st.y, html=True) if st.y else "y", "$y{custom}")]
        formatters = {"$x": self.formatters["xs"], "$y": self.formatters["ys"]}
        if shown is not None and not model.output(shown).is_label:
            rows.append((self._label(shown, html=True), f"@{{{shown}}}{{custom}}"))
            formatters[f"@{{{shown}}}"] = self.formatters["exact"]
        for v in (v for v in model.labels if self.ds is not None and v in self.ds):
            names = [logic.legend_text(f) for f in model.output(v).flags]
            key = f"label-{v}"
            if key not in self.formatters:
                self.formatters[key] = CustomJSHover(args={"names": names}, code=_LABEL)
            elif self.formatters[key].args.get("names") != names:
                self.formatters[key].args = {"names": names}
            rows.append((v, f"@{{{v}}}{{custom}}"))
            formatters[f"@{{{v}}}"] = self.formatters[key]
        html = "".join(f'<div class="pm-row"><span class="pm-name">{name}</span>: '
                       f'<span class="pm-value">{ref}</span></div>' for name, ref in rows)
        return f'<div class="phasemap-tip">{html}</div>', formatters

    # --- events ----------------------------------------------------------------------------
    def _on_axis(self, which: str) -> None:
        if self._quiet:
            return
        x, y = logic.swap_if_equal(self.x.value, self.y.value, which, self.x.options)
        self._quiet = True
        try:
            self.x.value, self.y.value = x, y
        finally:
            self._quiet = False
        self.state.param.update(x=x, y=y, tapped=None, window=None)
        self.draw_lines()
        self.build_sliders()
        self.request_draw(reset_range=True)

    def _on_slider(self, event) -> None:
        if self._rebuilding:
            return  # a reused slider set for the next dataset: open_dataset draws
        self.state.fixed = {d: float(s.value) for d, s in self.sliders.items()}
        self.request_draw()

    def _on_style(self) -> None:
        if self._quiet:
            return
        self.state.param.update(lens=self.lens.value or None, shown=self.shown.value,
                                thresholds=bool(self.thresholds.value))
        self.request_draw(style_only=True)

    def _on_ranges(self, event) -> None:
        if None in (event.x0, event.x1, event.y0, event.y1):
            return
        window = ((event.x0, event.x1), (event.y0, event.y1))
        self.state.window = window
        view, plane = self.view, self.plane
        if view is not None and plane is not None and covers(view, plane, window):
            return  # the browser's redraw of the data it has is already the full picture
        self.request_draw(window_only=True)

    def _on_tap(self, event) -> None:
        view, plane = self.view, self.plane
        if view is None or plane is None or event.x is None or event.y is None:
            return
        ix, iy = view.ax.stored_index(event.x), view.ay.stored_index(event.y)
        self.state.tapped = {self.state.x: float(plane.xs[ix]),
                             self.state.y: float(plane.ys[iy])}
        point = self.state.tapped
        self.tap_source.data = {"x": [point[self.state.x]], "y": [point[self.state.y]]}
        self._guard(self.draw_lines)

    # --- drawing -------------------------------------------------------------------------------
    def _set_busy(self) -> None:
        def apply() -> None:
            self._title_model.text = "updating…"
            self.image.glyph.global_alpha = 0.35

        self._apply(apply)

    def _plane_ready(self) -> bool:
        """Whether drawing the current state reads nothing from the store (its plane is
        decoded, or there is no map to draw)."""
        st = self.state
        if self.ds is None or not st.x or not st.y:
            return True
        return (st.dataset, st.x, st.y, tuple(sorted(st.fixed.items()))) in PLANES

    def request_draw(self, reset_range: bool = False, style_only: bool = False,
                     window_only: bool = False) -> None:
        """Redraw for the current state: at once when called on the event loop and the
        plane is decoded (no thread hop, no document lock to wait for: the handler holds
        it), else in a thread of its own, so that reading a plane never blocks the event
        loop that every session and the HTTP API share (the view then reaches the document
        on the loop's next tick)."""
        if self._built and self._doc is not None and _on_event_loop() \
                and not self._plane_ready():
            self._set_busy()
            threading.Thread(target=self._request_draw, daemon=True, name="phasemap-draw",
                             args=(reset_range, style_only, window_only)).start()
            return
        self._request_draw(reset_range, style_only, window_only)

    def _request_draw(self, reset_range: bool = False, style_only: bool = False,
                      window_only: bool = False) -> None:
        """Redraw for the current state; requests that arrive while one is being drawn are
        folded into one more draw of the latest state. A folded draw is a full one, and
        resets the ranges if any folded request asked for it (a dataset switch folded
        into a slider's redraw still gets its own axes)."""
        with self._count_lock:
            self._wanted += 1
            mine = self._wanted
            self._reset_pending = self._reset_pending or reset_range
        if not _on_event_loop():  # on the loop the view is sent with this handler's patches
            self._set_busy()
        while True:
            if not self._lock.acquire(blocking=False):
                return  # the thread drawing now will draw the latest state afterwards
            try:
                while self._drawn < self._wanted:
                    with self._count_lock:
                        target = self._wanted
                        reset, self._reset_pending = self._reset_pending, False
                    # a partial draw only for this request alone, never for folded ones
                    style, window = (style_only, window_only) if target == mine else \
                        (False, False)
                    mine = -1
                    if self._guard(self._draw, reset, style, window, target) is None:
                        self._apply(partial(self._failed, target))
                    self._drawn = max(self._drawn, target)
            finally:
                self._lock.release()
            if self._drawn >= self._wanted:
                return

    def _draw(self, reset_range: bool, style_only: bool, window_only: bool,
              serial: int) -> bool:
        """Draw the current state as view number ``serial``; True once it is sent."""
        st, ds, model = self.state, self.ds, self.model
        if ds is None or model is None:
            return True
        if not st.x or not st.y:
            self._apply(partial(self._clear_map, serial))
            self.status.object = ("This dataset has fewer than two dimensions with several "
                                  "values: see the line plot.")
            self.line_fig.visible = True
            self.draw_lines()
            return True
        key = (st.dataset, st.x, st.y, tuple(sorted(st.fixed.items())))
        x, y, fixed = st.x, st.y, dict(st.fixed)
        plane = PLANES.get(key, lambda: read_plane(ds, model, x, y, fixed))
        new_plane = plane is not self.plane
        shown = st.lens if st.shown == "labels" else st.shown
        if shown is None or shown not in plane.arrays:
            shown = next(iter(plane.arrays))
        is_label = model.output(shown).is_label
        patch: dict[str, list] = {}
        if style_only and not new_plane and self.view is not None:
            view = self.view
        elif window_only and not new_plane and self.view is not None and \
                covers(self.view, plane, st.window):
            view = self.view  # every stored point of the new window is already there
        else:
            view = make_view(plane, None if reset_range else st.window,
                             columns=() if is_label else (shown,))
        if shown not in view.data:  # another quantity of the same view: one column
            patch[shown] = [view.column(shown)]
            view.data[shown] = patch[shown]
        if is_label:
            flags = model.output(shown).flags
            present, _ = logic.present_codes(view.data[shown][0], len(flags))
            from ..plot.colors import LABEL_COLORS

            palette = [LABEL_COLORS.get(f, "#777777") for f in flags]
            low, high = -0.5, len(flags) - 0.5
        else:
            out = model.output(shown)
            low, high = logic.color_limits(plane.arrays[shown], out.signed)
            palette = list(DIVERGING) if out.signed else _sequential()
            present, flags = [], ()
        curves = self._thresholds(plane, key) if st.thresholds else []
        legend = self._legend_html(shown, is_label, flags, present, plane, curves)
        title = self._title(shown)
        tapped = st.tapped
        send = view is not self.view
        tooltips, formatters = self._hover_spec(shown)

        def apply() -> None:
            if not window_only or new_plane:
                if reset_range:
                    for rng, a in ((self.fig.x_range, view.ax), (self.fig.y_range, view.ay)):
                        rng.update(start=a.lo, end=a.hi, reset_start=a.lo, reset_end=a.hi)
                    self.fig.xaxis.axis_label = self._label(x)
                    self.fig.yaxis.axis_label = self._label(y)
            if send:
                self.image.glyph.image = "masked"
                self.source.data = dict(view.data)
            elif patch:  # a data patch of the new column into the source on screen
                self.source.data.update(patch)
            self.image.glyph.image = shown
            if self.hover.tooltips != tooltips:
                self.hover.update(formatters=formatters, tooltips=tooltips)
            self.mapper.update(palette=palette, low=low, high=high,
                               low_color=logic.MASK_COLOR if is_label else None)
            self.colorbar.visible = not is_label
            self.colorbar.title = "" if is_label else self._label(shown)
            self._set_curves(curves)
            if tapped is None and len(self.tap_source.data["x"]):
                self.tap_source.data = {"x": [], "y": []}
            self._title_model.text = title
            self.image.glyph.global_alpha = 1.0
            self.fig.tags = [serial]

        self.plane, self.view, self._plane_key = plane, view, key
        self._apply(apply)
        if new_plane:
            self._prefetch_neighbours(ds, model, x, y, fixed)
        self.legend.object = legend
        self.status.object = self._status_html(shown)
        self._update_exports(shown)
        if new_plane and tapped is not None:
            self.draw_lines()
        return True

    def _prefetch_neighbours(self, ds: xr.Dataset, model: Model, x: str, y: str,
                             fixed: dict[str, float]) -> None:
        """Queue the planes one slider step away from ``fixed`` for :data:`PREFETCH`."""
        jobs: list[tuple[tuple, Callable[[], Plane]]] = []
        for d, value in logic.neighbour_values(
                {d: np.asarray(ds[d].values, dtype=np.float64) for d in fixed}, fixed):
            near = {**fixed, d: value}
            key = (self.state.dataset, x, y, tuple(sorted(near.items())))
            jobs.append((key, partial(read_plane, ds, model, x, y, near)))
        PREFETCH.want(jobs)

    def _failed(self, serial: int) -> None:
        """A view that could not be drawn: say so on the map (the message says why)."""
        self._title_model.text = "not redrawn: see the message on the left"
        self.image.glyph.global_alpha = 0.35
        self.fig.tags = [serial]

    def _clear_map(self, serial: int) -> None:
        self.image.glyph.image = "masked"
        self.source.data = {"masked": [], "x": [], "y": [], "dw": [], "dh": [], "xs": [],
                            "ys": []}
        self.fig.tags = [serial]
        self._title_model.text = ""
        self.image.glyph.global_alpha = 1.0

    def _threshold_names(self, plane: Plane) -> list[str]:
        model = self._m()
        return [q for q in model.quantities if model.output(q).signed
                and q in plane.arrays][:len(DASHES) - 1]

    def _thresholds(self, plane: Plane, key: tuple) -> list[tuple[str, list[np.ndarray]]]:
        """Sign-change curves of the model's first signed quantities known for ``plane``
        (cached on it). Missing ones are traced in the background and drawn when ready, so
        the map never waits for root finding."""
        names = self._threshold_names(plane)
        missing = [q for q in names if q not in plane.thresholds]
        if missing:
            ds, x, y, fixed = self.ds, self.state.x, self.state.y, dict(self.state.fixed)
            threading.Thread(target=self._trace, args=(plane, ds, x, y, fixed, missing),
                             daemon=True, name="phasemap-thresholds").start()
        return [(q, plane.thresholds[q]) for q in names if q in plane.thresholds]

    def _trace(self, plane, ds, x, y, fixed, names) -> None:
        from ..plot.boundaries import threshold_lines

        with _TRACE_LOCK:
            for q in names:
                if q in plane.thresholds:
                    continue
                try:
                    plane.thresholds[q] = threshold_lines(
                        ds, x, y, q, along=y, num=min(201, plane.xs.size), **fixed)
                except Exception:  # a curve that cannot be traced is left out, not fatal
                    traceback.print_exc()
                    plane.thresholds[q] = []
        if self.plane is not plane or not self.state.thresholds or plane is None:
            return
        curves = [(q, plane.thresholds[q]) for q in self._threshold_names(plane)
                  if q in plane.thresholds]

        def apply() -> None:
            self._set_curves(curves)

        self._apply(apply)
        st = self.state
        shown = st.lens if st.shown == "labels" else st.shown
        if shown is not None and shown in plane.arrays:
            out = self._m().output(shown)
            view = self.view
            present = logic.present_codes(view.column(shown), len(out.flags))[0] \
                if out.is_label and view is not None else []
            self.legend.object = self._legend_html(shown, out.is_label, out.flags, present,
                                                   plane, curves)

    def _set_curves(self, curves) -> None:
        for i, src in enumerate(self.threshold_sources):
            lines = curves[i][1] if i < len(curves) else []
            if not lines and not len(src.data["xs"]):
                continue  # empty stays empty: no patch to send
            src.data = {"xs": [seg[:, 0] for seg in lines],
                        "ys": [seg[:, 1] for seg in lines]}

    def _title(self, shown: str) -> str:
        parts = [f"{self._label(d).split(' [')[0]} = {v:g}" for d, v in self.state.fixed.items()]
        rec = self._records.get(self.state.dataset or "", {})
        fixed = logic.fixed_parameters(rec)
        head = (rec.get("spec") or {}).get("name") or self.state.dataset
        what = shown if self.model and self._m().output(shown).is_label else \
            self._label(shown).split(" [")[0]
        text = f"{head}: {what}"
        rest = ", ".join([*parts, *([fixed] if fixed else [])])
        return f"{text} ({rest})" if rest else text

    def _status_html(self, shown: str) -> str:
        st = self.state
        rec = self._records.get(st.dataset or "", {})
        fixed = ", ".join(f"{d}={v:g}" for d, v in st.fixed.items())
        params = logic.fixed_parameters(rec)
        what = f"{shown} map" if self._m().output(shown).is_label else f"map of {shown}"
        n = (self.plane.xs.size, self.plane.ys.size) if self.plane is not None else (0, 0)
        return (f"<b>{st.dataset}</b> — {what} over {st.x} × {st.y} ({n[0]} × {n[1]})"
                f"{'; ' + fixed if fixed else ''}"
                f"{'<br>fixed: ' + params if params else ''}")

    def _legend_html(self, shown, is_label, flags, present, plane, curves) -> str:
        from ..plot.colors import LABEL_COLORS

        rows = []
        if is_label:
            rows.append(f"<b>{shown}</b>")
            for c in present:
                color = LABEL_COLORS.get(flags[c], "#777777")
                rows.append(f'<div class="pm-label" data-label="{flags[c]}">'
                            f'<span style="display:inline-block;width:14px;height:14px;'
                            f'background:{color};border:1px solid #555;margin-right:6px">'
                            f'</span>{logic.legend_text(flags[c])}</div>')
        if plane.invalid.any():
            rows.append(f'<div class="pm-masked"><span style="display:inline-block;'
                        f'width:14px;height:14px;background:{logic.MASK_COLOR};'
                        f'border:1px solid #555;margin-right:6px"></span>'
                        f'outside the model\'s domain ({logic.domain_text(self._m())})</div>')
        for (q, lines), dash in zip(curves, DASHES, strict=False):
            if lines:
                rows.append(f'<div class="pm-curve">{dash} line: '
                            f'{self._label(q, html=True).split(" [")[0]} = 0</div>')
        return "".join(rows)

    # --- clicking: the line plot ------------------------------------------------------------
    def _point(self) -> dict[str, float] | None:
        """Every dimension's value at the clicked point (None before any click on a map)."""
        st, ds = self.state, self._d()
        point = dict(st.fixed)
        if len(logic.multi_dims({str(d): n for d, n in ds.sizes.items()})) >= 2:
            if st.tapped is None or not st.x or not st.y:
                return None
            point.update(st.tapped)
        for d in ds.dims:
            d = str(d)
            if d not in point:
                values = np.asarray(ds[d].values)
                point[d] = float(values[len(values) // 2])
        return point

    def draw_lines(self) -> None:
        ds, model = self.ds, self.model
        along = self.along.value
        if ds is None or model is None or not along:
            return
        point = self._point()
        if point is None:
            self._apply(self._hide_lines)
            self.point_info.object = ("Click a point of the map to draw the lines along "
                                      f"{along} through it.")
            return
        names = [q for q in model.quantities if model.output(q).signed and q in ds]
        every = [q for q in model.quantities if q in ds]  # the record: every value
        xs, line = self._line(point, along, [*every, *[v for v in model.labels if v in ds]])
        at = point[along]
        k = int(np.argmin(np.abs(xs - at)))
        marks: dict[str, list] = {"x": [], "y": [], "color": []}
        series = {}
        for i, q in enumerate(names):
            ys = np.asarray(line[q], dtype=np.float64)
            series[q] = (ys, LINE_COLORS[i % len(LINE_COLORS)])
            marks["x"].append(float(xs[k]))
            marks["y"].append(float(ys[k]))
            marks["color"].append(LINE_COLORS[i % len(LINE_COLORS)])
        record = {d: point[d] for d in point}
        values = {q: float(line[q][k]) for q in every}
        labels = {v: int(line[v][k]) for v in model.labels if v in line}

        def apply() -> None:
            from bokeh.models import ColumnDataSource

            lf = self.line_fig
            for q in list(self.line_renderers):
                self.line_renderers[q].visible = q in series
            for q, (ys, color) in series.items():
                r = self.line_renderers.get(q)
                if r is None:
                    src = ColumnDataSource(data={"x": xs, "y": ys})
                    r = lf.line("x", "y", source=src, line_width=2, color=color,
                                legend_label=self._label(q))
                    self.line_renderers[q] = r
                else:
                    r.data_source.data = {"x": xs, "y": ys}
            lf.xaxis.axis_label = self._label(along)
            self.crosshair.location = float(xs[k])
            self.crosshair.visible = True
            self.line_marks.data = marks
            lf_title: Any = lf.title
            lf_title.text = f"along {self._label(along).split(' [')[0]} through the clicked " \
                            "point"
            lf.visible = True
            lf.tags = [int(lf.tags[0]) + 1 if lf.tags else 1]  # line plots drawn (tests)

        self._apply(apply)
        # every value exactly (shortest round-trip decimal, as the hover and GET /point):
        # the hover shows only the shown quantity, the record under the map all of them
        parts = [f'<span class="pm-rec" data-name="{n}" data-value="{logic.exact_text(v)}">'
                 f"{self._label(n, html=True).split(' [')[0]} = {logic.exact_text(v)}</span>"
                 for n, v in [*record.items(), *values.items()]]
        for v, c in labels.items():
            flags = model.output(v).flags
            text = logic.legend_text(flags[c]) if 0 <= c < len(flags) else \
                "outside the model's domain"
            parts.append(f'<span class="pm-rec" data-name="{v}" data-value="{text}">'
                         f"{v}: {text}</span>")
        self.point_info.object = "<b>Point</b> " + ", ".join(parts)

    def _line(self, point: dict[str, float], along: str, names: list[str]
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The values of ``names`` along ``along`` through ``point``: a row or column of the
        plane on screen when ``along`` is one of the map's axes (no read at all), else read
        from the dataset."""
        st, plane = self.state, self.plane
        key = (st.dataset, st.x, st.y, tuple(sorted(st.fixed.items())))
        if plane is not None and self._plane_key == key and along in (st.x, st.y) \
                and all(q in plane.arrays for q in names):
            if along == st.x:
                i = int(np.argmin(np.abs(plane.ys - point[str(st.y)])))
                return plane.xs, {q: plane.arrays[q][i, :] for q in names}
            j = int(np.argmin(np.abs(plane.xs - point[str(st.x)])))
            return plane.ys, {q: plane.arrays[q][:, j] for q in names}
        ds = self._d()
        index = {d: int(np.argmin(np.abs(np.asarray(ds[d].values, dtype=float) - v)))
                 for d, v in point.items() if d != along and d in ds.dims}
        line = ds[names].isel(index).compute()
        return (np.asarray(line[along].values, dtype=np.float64),
                {q: np.asarray(line[q].values) for q in names})

    def _hide_lines(self) -> None:
        self.line_fig.visible = False
        self.crosshair.visible = False
        if len(self.tap_source.data["x"]):  # an empty source is not re-sent
            self.tap_source.data = {"x": [], "y": []}

    # --- exports ----------------------------------------------------------------------------
    def _export_widgets(self):
        import panel as pn

        self.export_files = {}
        for fmt in ("png", "svg", "pdf", "csv"):
            self.export_files[fmt] = pn.widgets.FileDownload(
                callback=self._export_callback(fmt), filename=f"phasemap-view.{fmt}",
                label=fmt.upper(), width=66, button_type="light", embed=False)
        self.netcdf_link = pn.pane.HTML("", width=300, css_classes=["phasemap-netcdf"])
        return pn.Column(pn.pane.Markdown("Export the view / the slice:", width=300),
                         pn.Row(*self.export_files.values()), self.netcdf_link, width=320)

    def _export_callback(self, fmt: str):
        def make():
            data = self._guard(self.export_bytes, fmt)
            return io.BytesIO(data or b"")

        return make

    def _update_exports(self, shown: str) -> None:
        st = self.state
        if not st.dataset:
            return
        url = logic.slice_query(st.dataset, st.fixed, "netcdf")
        self.netcdf_link.object = f'<a href="{url}" download>NetCDF of the slice</a>'
        for fmt, widget in self.export_files.items():
            widget.filename = f"{st.dataset}-{shown}-{st.x}-{st.y}.{fmt}"

    def export_bytes(self, fmt: str) -> bytes:
        """The current view as PNG/SVG/PDF (matplotlib) or the plane as CSV."""
        if self.plane is None or self.view is None:
            raise ParameterError("export", fmt, "a map on screen")
        st = self.state
        if fmt == "csv":
            sub = self._d().sel({d: v for d, v in st.fixed.items()}, method="nearest")
            frame = sub[[v for v in self._m().outputs if v in sub]].compute().to_dataframe()
            for v in self._m().labels:
                if v in frame:
                    flags = self._m().output(v).flags
                    frame[f"{v}_label"] = [flags[c] if 0 <= c < len(flags) else ""
                                           for c in frame[v].to_numpy()]
            return frame.to_csv().encode()
        shown = st.lens if st.shown == "labels" else st.shown
        if shown is None or st.x is None or st.y is None:
            raise ParameterError("export", fmt, "a map on screen")
        return render_view(self.view, self._m(), shown, self._label(st.x),
                           self._label(st.y), self._label(shown), self._title(shown), fmt)

    # --- the new-grid form --------------------------------------------------------------------
    def _build_form(self) -> None:
        import panel as pn

        from ..models import get_model

        model = get_model(self.form_model.value)
        self.form_inputs = {}
        for f in logic.form_fields(model):
            self.form_inputs[f.name] = pn.widgets.TextInput(
                name=f.label, value="", placeholder=f"{f.default:g}", description=f.help,
                width=145)
        self.form_box.objects = list(self.form_inputs.values())

    def form_spec(self) -> GridSpec:
        """The form as a grid spec, through the one validation path."""
        from ..models import get_model
        from .limits import spec_from_request

        model = get_model(self.form_model.value)
        texts = {name: widget.value for name, widget in self.form_inputs.items()}
        # the same limits as POST /api/grids, counted before any axis is built
        return spec_from_request(logic.parse_form(model, texts, self.form_name.value or ""),
                                 max_points=self.config.max_grid_points,
                                 max_chunk_points=self.config.max_chunk_points)

    def submit(self) -> None:
        token = self.config.token
        if token and not hmac.compare_digest((self.form_token.value or "").encode(),
                                             token.encode()):
            self.form_status.object = "This server needs its token to compute grids."
            return
        spec = self._guard(self.form_spec)
        if spec is None:
            return
        job = self._guard(self.jobs.submit, spec)
        if job is None:
            return
        self.say("")
        self.job = job
        self.form_progress.visible = True
        self.form_progress.value = 0
        self._update_job()
        import panel as pn

        if self._poll is None:
            self._poll = pn.state.add_periodic_callback(self._update_job, period=400)

    def _update_job(self) -> None:
        job = self.job
        if job is None:
            return
        info = job.as_dict()
        pr = info["progress"]
        self.form_progress.value = round(100 * pr["fraction"])
        self.form_status.object = (f"grid **{job.id}**: {job.status}, "
                                   f"{pr['done_shards']}/{pr['total_shards']} shards, "
                                   f"{pr['points_computed']:,} points computed"
                                   + (f" — {job.error}" if job.error else ""))
        if job.status in ("done", "failed"):
            if self._poll is not None:
                self._poll.stop()
                self._poll = None
            if job.status == "done":
                self.form_progress.value = 100
                self.load_list(select=job.id)


def _undebounced(widget: Any) -> Any:
    """``widget`` with Panel's debounce of browser changes off (50 ms by default: every
    slider step, menu choice or lens click waited that long before the server saw it).
    Bursts are folded by :meth:`Explorer.request_draw` instead. A discrete slider's inner
    slider (made anew when its options change) is set too."""
    for w in (widget, getattr(widget, "_slider", None)):
        if w is not None:
            w._debounce = 0
    return widget


def _on_event_loop() -> bool:
    """Whether this thread runs the (Bokeh server's) asyncio event loop."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _sequential() -> list[str]:
    from bokeh import palettes

    return list(getattr(palettes, SEQUENTIAL))


def _model_names() -> list[str]:
    from ..models import available_models

    return list(available_models())


def _default_model() -> str:
    names = _model_names()
    return "single_level" if "single_level" in names else names[0]


def render_view(view: View, model: Model, shown: str, xlabel: str, ylabel: str,
                zlabel: str, title: str, fmt: str) -> bytes:
    """The view on screen as a PNG, SVG or PDF file (matplotlib, same colours and mask)."""
    if fmt not in ("png", "svg", "pdf"):
        raise ParameterError("format", fmt, "png, svg or pdf")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from ..plot.colors import LABEL_COLORS

    out = model.output(shown)
    values = np.asarray(view.column(shown), dtype=np.float64)
    masked = np.asarray(view.data["masked"][0]).astype(bool)
    extent = (view.ax.lo, view.ax.hi, view.ay.lo, view.ay.hi)
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    cmap: Any
    if out.is_label:
        cmap = ListedColormap([LABEL_COLORS.get(f, "#777777") for f in out.flags])
        data = np.ma.masked_where(masked | (values < 0), values)
        ax.imshow(data, origin="lower", extent=extent, aspect="auto", cmap=cmap,
                  vmin=-0.5, vmax=len(out.flags) - 0.5, interpolation="nearest")
        present, _ = logic.present_codes(values[~masked].astype(np.int64), len(out.flags))
        handles = [Patch(color=LABEL_COLORS.get(out.flags[c], "#777777"),
                         label=logic.legend_text(out.flags[c])) for c in present]
        if masked.any():
            handles.append(Patch(color=logic.MASK_COLOR, label="outside the model's domain"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  frameon=False, fontsize=8)
    else:
        low, high = logic.color_limits(values, out.signed)
        cmap = ListedColormap(list(DIVERGING)) if out.signed else \
            matplotlib.colormaps["viridis"]
        image = ax.imshow(np.ma.masked_where(masked, values), origin="lower", extent=extent,
                          aspect="auto", cmap=cmap, vmin=low, vmax=high,
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, label=zlabel)
    ax.set_facecolor(logic.MASK_COLOR)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150)
    return buf.getvalue()
