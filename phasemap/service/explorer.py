"""The phase-map explorer: a Panel page served by the same process as the API.

Each browser session gets an :class:`Explorer`: pick a stored dataset (or state a new grid in
the form; it is submitted to the same :class:`~phasemap.service.jobs.JobManager` as
``POST /api/grids`` and its progress is shown), pick the two map axes, move a slider for every
other dimension, switch the lens (regime / machine) and the shown variable (the labels, or
``J_L``, ``Q_L``, ``Q_R``, ``P``, ``s``). Hovering shows the grid point's values and both
labels; clicking draws the line plot along a chosen axis through the clicked point.

Only the plane on screen is read from Zarr (the dataset is opened lazily); planes of more than
:data:`MAX_PLANE_POINTS` are read every k-th point and, above the renderers' own limit, reduced
by datashader with a categorical aggregation (:func:`phasemap.plot.phase_map`). All drawing is
done by :mod:`phasemap.plot`; this module only adds the hover/tap layer.
"""

from __future__ import annotations

import functools
import hmac
import math
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ParameterError, PhasemapError
from ..grid import GridSpec
from ..regimes import LENSES
from ..store import Store
from ..variables import VARIABLES, axis_label
from .api import DatasetCache
from .config import ServiceConfig
from .jobs import Job, JobManager
from .limits import spec_from_request

#: Variables the map can show besides the labels.
SHOWN = ("J_L", "Q_L", "Q_R", "P", "s")
#: Largest plane of the shown variable read from the store [points]; larger planes are read
#: every k-th point. Above the renderers' ``MAX_PIXELS`` datashader reduces it to the screen.
MAX_PLANE_POINTS = 4_000_000
#: Largest plane whose every grid point is sent to the browser for the hover tooltip [cells]
#: (the paper's 401 x 401 maps fit). A larger plane gets no tooltip layer: the point under the
#: cursor is then read from the store on the server and shown beside the map. Either way the
#: hover reports the exact stored grid point under the cursor, never a thinned copy.
MAX_HOVER_CELLS = 250_000
#: Size of the map [screen pixels], legend included.
MAP_WIDTH, MAP_HEIGHT = 900, 520
#: Form fields of a new grid, in dimension order.
FORM_PARAMS = ("eps", "T", "dT", "dV", "mu", "gamma_L", "gamma_R")
FORM_DEFAULTS = {"eps": "-20:20:81", "T": "7.5", "dT": "2.5, 5", "dV": "-10:10:41"}

_LABEL_JS = "const k = Math.round(value); return (k >= 0 && k < names.length) ? names[k] : '-';"


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
    import panel as pn
    from panel.io.fastapi import add_applications

    pn.config.nthreads = max(pn.config.nthreads or 0, 2)  # callbacks off the event loop
    from ..plot import _hv

    _hv.hv()  # import HoloViews and its backends now, not in the first visitor's session
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


# --- the hover / tap layer ------------------------------------------------------------------

def _regular(values: np.ndarray) -> bool:
    d = np.diff(values)
    return values.size >= 2 and bool(np.allclose(d, d[0], rtol=1e-6, atol=0))


def _strides(plane: xr.Dataset, dims: tuple[str, ...], limit: int) -> dict[str, int]:
    """Per-dim strides so that reading every k-th point keeps at most ``limit`` points."""
    sizes = [plane.sizes[d] for d in dims]
    total = math.prod(sizes)
    if total <= limit:
        return dict.fromkeys(dims, 1)
    k = math.ceil(math.sqrt(total / limit))
    return dict.fromkeys(dims, k)


def hover_layer(plane: xr.Dataset, x: str, y: str, lens: str):
    """An invisible raster on top of the map whose hover shows the values and both labels.

    The cells are the plane's grid points, every one of them (the caller sends planes of at
    most :data:`MAX_HOVER_CELLS`), and carry their grid coordinates, so the tooltip names the
    stored grid point under the cursor with its stored values.
    """
    import holoviews as hv
    from bokeh.models import CustomJSHover, HoverTool

    sub = plane.transpose(y, x)
    labels = [v for v in ("regime", "machine") if v in sub]
    floats = [v for v in ("J_L", "Q_L", "Q_R", "P", "s") if v in sub]
    first = lens if lens in labels else (labels[0] if labels else floats[0])
    names = [first] + [v for v in labels + floats if v != first]
    xs, ys = np.meshgrid(np.asarray(sub[x].values), np.asarray(sub[y].values))
    data = {v: np.asarray(sub[v].values, dtype=np.float64) for v in names}
    data[f"{x}_at"], data[f"{y}_at"] = xs, ys
    vdims = [*names, f"{x}_at", f"{y}_at"]
    coords = (np.asarray(sub[x].values), np.asarray(sub[y].values))
    if _regular(coords[0]) and _regular(coords[1]):
        element = hv.Image((*coords, *(data[v] for v in vdims)), kdims=[x, y], vdims=vdims,
                           group="Hover")
        field = {v: ("image" if v == names[0] else v) for v in vdims}
    else:
        element = hv.QuadMesh((*coords, *(data[v] for v in vdims)), kdims=[x, y],
                              vdims=vdims, group="Hover")
        field = {v: v for v in vdims}

    def ref(v: str) -> str:
        return "@{" + field[v] + "}"

    tooltips = [(axis_label(x), ref(f"{x}_at")), (axis_label(y), ref(f"{y}_at"))]
    formatters = {}
    for v in labels:
        tooltips.append((v, ref(v) + "{custom}"))
        formatters[ref(v)] = CustomJSHover(args={"names": list(LENSES[v])}, code=_LABEL_JS)
    for v in floats:
        units = VARIABLES.get(v, {}).get("units")
        tooltips.append((f"{v} [{units}]" if units and units != "1" else v,
                         ref(v) + "{0.000000e+0}"))
    hover = HoverTool(tooltips=tooltips, formatters=formatters)
    opts = {"alpha": 0.0, "tools": [hover, "tap"], "colorbar": False}
    if isinstance(element, hv.QuadMesh):
        opts["line_alpha"] = 0.0
    return element.opts(**opts, backend="bokeh")


def pointer_layer(xs: np.ndarray, ys: np.ndarray, x: str, y: str):
    """An invisible rectangle over the map's extent: the source of the pointer and tap
    streams of a plane too large for a tooltip layer."""
    import holoviews as hv

    bounds = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    return hv.Bounds(bounds, kdims=[x, y]).opts(alpha=0.0, tools=["tap"], backend="bokeh")


def _without_hover(obj):
    """``obj`` with the hover tools of its rasters removed (the hover layer replaces them)."""
    import holoviews as hv

    def strip(el):
        if isinstance(el, hv.Image | hv.QuadMesh):
            return el.opts(tools=[], backend="bokeh")
        return el

    return obj.map(strip, [hv.Image, hv.QuadMesh])


# --- the page ----------------------------------------------------------------------------------

class Explorer:
    """One session's explorer (widgets, state and the callbacks between them)."""

    def __init__(self, config: ServiceConfig, store: Store, jobs: JobManager,
                 datasets: DatasetCache):
        import panel as pn

        self.config, self.store, self.jobs, self.datasets = config, store, jobs, datasets
        self.ds: xr.Dataset | None = None
        self.dataset_id: str | None = None
        self.plane: xr.Dataset | None = None
        self.tap = None
        self.pointer = None
        self.tapped: dict[str, float] | None = None
        self.job: Job | None = None
        self._poll = None
        self._busy = False

        w = pn.widgets
        self.dataset = w.Select(name="Dataset", options={}, width=300)
        self.refresh = w.Button(name="Refresh list", width=120)
        self.x = w.Select(name="Map x axis", options=[], width=145)
        self.y = w.Select(name="Map y axis", options=[], width=145)
        self.lens = w.RadioButtonGroup(name="Lens", options=list(LENSES), value="regime",
                                       button_type="default", width=300)
        self.shown = w.Select(name="Shown variable", options=["labels", *SHOWN],
                              value="labels", width=145)
        self.thresholds = w.Checkbox(name="threshold curves", value=True, width=145)
        self.along = w.Select(name="Line plot along", options=[], width=300)
        self.sliders_box = pn.Column(sizing_mode="stretch_width")
        self.sliders: dict[str, Any] = {}
        self.message = pn.pane.Alert("", alert_type="light", visible=False, width=300)
        self.status = pn.pane.Markdown("", css_classes=["phasemap-status"], width=300)
        self.map_pane = pn.pane.HoloViews(None, backend="bokeh", css_classes=["phasemap-map"])
        self.line_pane = pn.pane.HoloViews(None, backend="bokeh",
                                           css_classes=["phasemap-lines"])
        self.point_info = pn.pane.Markdown("Click a point of the map to draw the lines "
                                           "through it.", width=700)
        self.hover_info = pn.pane.Markdown("", width=700, visible=False,
                                           css_classes=["phasemap-hover"])

        # the new-grid form
        self.form_inputs = {p: w.TextInput(name=p, value=FORM_DEFAULTS.get(p, ""),
                                           placeholder="default", width=145)
                            for p in FORM_PARAMS}
        self.form_name = w.TextInput(name="name", value="", placeholder="optional", width=300)
        self.form_token = w.PasswordInput(name="token", width=300, visible=bool(config.token))
        self.form_submit = w.Button(name="Compute grid", button_type="primary", width=300)
        self.form_progress = pn.indicators.Progress(value=0, max=100, width=300,
                                                    visible=False, bar_color="info")
        self.form_status = pn.pane.Markdown("", width=300, css_classes=["phasemap-job"])
        form = pn.Card(
            pn.pane.Markdown("Each field: a value `7.5`, a range `start:stop:num` or a list "
                             "`2.5, 5`. Empty fields take the model's defaults.", width=300),
            pn.GridBox(*self.form_inputs.values(), ncols=2, width=310),
            self.form_name, self.form_token, self.form_submit, self.form_progress,
            self.form_status, title="New grid", collapsed=True, width=330)

        sidebar = pn.Column(
            pn.pane.Markdown("## phasemap explorer"), self.dataset, self.refresh,
            pn.Row(self.x, self.y), self.lens, pn.Row(self.shown, self.thresholds),
            self.sliders_box, self.along, self.message, self.status, form, width=340)
        self.layout = pn.Row(sidebar, pn.Column(self.map_pane, self.hover_info, self.point_info,
                                                self.line_pane))

        self.refresh.on_click(lambda event: self.load_list())
        self.dataset.param.watch(lambda event: self.open_dataset(event.new), "value")
        for widget in (self.x, self.y, self.lens, self.shown, self.thresholds):
            widget.param.watch(self._on_view, "value")
        self.along.param.watch(lambda event: self.draw_lines(), "value")
        self.form_submit.on_click(lambda event: self.submit())
        self.load_list(select=_session_arg("dataset"))

    # --- helpers ---------------------------------------------------------------------------
    def say(self, text: str, kind: str = "danger") -> None:
        self.message.object = text
        self.message.alert_type = kind
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

    # --- datasets --------------------------------------------------------------------------
    def load_list(self, select: str | None = None) -> None:
        options = {}
        records = sorted(self.store.requests(), key=lambda r: r.get("created", ""))
        for r in records:
            shape = " × ".join(f"{d} {n}" for d, n in zip(r["dims"], r["shape"], strict=True))
            options[f"{r['spec'].get('name') or r['id']} ({shape})"] = r["id"]
        current = select or self.dataset.value
        self.dataset.options = options
        if not options:
            self.say("The store holds no dataset yet: state a grid under 'New grid'.", "info")
            return
        ids = list(options.values())
        target = current if current in ids else default_dataset(records, paper_map_ids())
        if self.dataset.value != target:
            self.dataset.value = target  # triggers open_dataset
        elif self.ds is None or self.dataset_id != target:
            self.open_dataset(target)

    def open_dataset(self, rid: str | None) -> None:
        if not rid:
            return
        ds = self._guard(self.datasets.open, rid)
        if ds is None:
            return
        self.say("")
        self.ds, self.dataset_id, self.tapped = ds, rid, None
        multi = [str(d) for d in ds.dims if ds.sizes[d] > 1]
        self._busy = True
        try:
            self.x.options, self.y.options = multi, multi
            self.along.options = multi
            prefer_x = [d for d in ("eps", "dT", "T", "dV") if d in multi]
            x = prefer_x[0] if prefer_x else (multi[0] if multi else None)
            rest = [d for d in multi if d != x]
            prefer_y = [d for d in ("dV", "dT", "T", "eps") if d in rest]
            y = prefer_y[0] if prefer_y else (rest[0] if rest else None)
            self.x.value, self.y.value = x, y
            self.along.value = x
        finally:
            self._busy = False
        self.build_sliders()
        self.draw()

    def build_sliders(self) -> None:
        import panel as pn

        self.sliders = {}
        items = []
        if self.ds is None:
            self.sliders_box.objects = []
            return
        for d in self.ds.dims:
            d = str(d)
            if d in (self.x.value, self.y.value):
                continue
            values = [float(v) for v in np.asarray(self.ds[d].values)]
            label = axis_label(d, self.ds[d].attrs)
            if len(values) == 1:
                items.append(pn.pane.Markdown(f"{label} = {values[0]:g}", width=300))
                continue
            slider = pn.widgets.DiscreteSlider(name=label, options=values,
                                               value=values[len(values) // 2], width=290,
                                               css_classes=[f"slider-{d}"])
            slider.param.watch(self._on_view, "value")
            self.sliders[d] = slider
            items.append(slider)
        self.sliders_box.objects = items

    def _on_view(self, event) -> None:
        if self._busy:
            return
        if event.obj in (self.x, self.y):
            if self.x.value == self.y.value:
                others = [o for o in self.x.options if o != event.new]
                self._busy = True
                try:
                    if event.obj is self.x and others:
                        self.y.value = others[0]
                    elif others:
                        self.x.value = others[0]
                finally:
                    self._busy = False
            self.build_sliders()
        self.draw()

    # --- the map ---------------------------------------------------------------------------
    def selection(self) -> dict[str, float]:
        return {d: float(s.value) for d, s in self.sliders.items()}

    def read_plane(self, variables: list[str], limit: int) -> xr.Dataset:
        """``variables`` on the plane on screen, read from the store; every k-th point when
        the plane has more than ``limit`` points."""
        from ..plot.boundaries import select

        ds, x, y = self.ds, self.x.value, self.y.value
        plane = select(ds[[v for v in variables if v in ds]], [y, x], self.selection())
        strides = _strides(plane, (y, x), limit)
        if any(k > 1 for k in strides.values()):
            plane = plane.isel({d: slice(None, None, k) for d, k in strides.items()})
        return plane.compute()

    def draw(self) -> None:
        self._guard(self._draw)

    def _draw(self) -> None:
        import holoviews as hv

        from ..plot import phase_map, value_map

        if self.ds is None or not self.x.value or not self.y.value:
            self.map_pane.object = None
            self.status.object = ("This dataset has fewer than two dimensions with several "
                                  "values: see the line plot." if self.ds is not None else "")
            self.draw_lines()
            return
        x, y, lens = self.x.value, self.y.value, self.lens.value
        # the map's own variable at full resolution (datashader reduces it when it is larger
        # than the screen), everything else only as dense as the hover layer needs
        shown = lens if self.shown.value == "labels" else self.shown.value
        plane = self.read_plane([shown], MAX_PLANE_POINTS)
        cells = self.ds.sizes[x] * self.ds.sizes[y]
        exact_hover = cells <= MAX_HOVER_CELLS
        # every grid point of the plane for the tooltip, or none (then read per pointer move)
        self.plane = (self.read_plane(["regime", "machine", *SHOWN], cells)
                      if exact_hover else None)
        thresholds = bool(self.thresholds.value)
        if self.shown.value == "labels":
            overlay = phase_map(plane, x, y, lens=lens, thresholds=thresholds,
                                width=MAP_WIDTH, height=MAP_HEIGHT)
        else:
            overlay = value_map(plane, self.shown.value, x, y, thresholds=thresholds,
                                width=MAP_WIDTH, height=MAP_HEIGHT)
        plot_opts = overlay.opts.get("plot", backend="bokeh").kwargs
        if exact_hover:
            hover = hover_layer(self.plane, x, y, lens)
            self.pointer = None
            self.hover_info.visible = False
        else:
            hover = pointer_layer(np.asarray(self.ds[x].values), np.asarray(self.ds[y].values),
                                  x, y)
            self.pointer = hv.streams.PointerXY(source=hover)
            self.pointer.add_subscriber(self._on_pointer)
            self.hover_info.visible = True
            self.hover_info.object = "Move the cursor over the map to read its grid point."
        self.tap = hv.streams.Tap(source=hover, transient=True)
        self.tap.add_subscriber(self._on_tap)
        overlay = hv.Overlay([*_without_hover(overlay), hover]).opts(**plot_opts,
                                                                     backend="bokeh")
        self.map_pane.object = overlay
        fixed = ", ".join(f"{d}={v:g}" for d, v in self.selection().items())
        what = f"{lens} map" if self.shown.value == "labels" else f"map of {self.shown.value}"
        self.status.object = (f"**{self.dataset_id}** — {what} over {x} × {y} "
                              f"({plane.sizes[x]} × {plane.sizes[y]})"
                              f"{'; ' + fixed if fixed else ''}")
        self.draw_lines()

    # --- clicking: the line plot ------------------------------------------------------------
    def _grid_point(self, x: float, y: float) -> dict[str, float]:
        """The stored grid point nearest to map position (``x``, ``y``), sliders included."""
        px, py = self.x.value, self.y.value
        cx = np.asarray(self.ds[px].values)
        cy = np.asarray(self.ds[py].values)
        return {px: float(cx[np.argmin(np.abs(cx - x))]),
                py: float(cy[np.argmin(np.abs(cy - y))])}

    def _on_tap(self, x=None, y=None, **_) -> None:
        if x is None or y is None or self.ds is None:
            return
        self.tapped = self._grid_point(x, y)
        self.draw_lines()

    def _on_pointer(self, x=None, y=None, **_) -> None:
        """Large planes: the exact stored point under the cursor, read on the server."""
        if x is None or y is None or self.ds is None:
            return
        self._guard(self._show_pointer, x, y)

    def _show_pointer(self, x: float, y: float) -> None:
        from ..query import point_record

        point = {**self.selection(), **self._grid_point(x, y)}
        for d in self.ds.dims:
            point.setdefault(str(d), float(self.ds[d].values[0]))
        record = point_record(self.ds, point)
        self.hover_info.object = "**Under the cursor** " + ", ".join(
            f"{k} = {v:.7g}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in record.items())

    def draw_lines(self) -> None:
        self._guard(self._draw_lines)

    def _draw_lines(self) -> None:
        from ..plot import line_plot
        from ..plot.boundaries import select
        from ..query import point_record

        if self.ds is None or not self.along.value:
            self.line_pane.object = None
            return
        along = self.along.value
        point = self._current_point()
        if point is None:
            self.line_pane.object = None
            self.point_info.object = ("Click a point of the map to draw the lines along "
                                      f"{along} through it.")
            return
        sel = {d: v for d, v in point.items() if d != along}
        line = select(self.ds, [along], sel).compute()
        variables = [v for v in ("J_L", "Q_L", "Q_R", "s") if v in line]
        self.line_pane.object = line_plot(line, along, variables=variables,
                                          lens=self.lens.value, width=360, height=230)
        record = point_record(self.ds, point)
        text = ", ".join(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k}: {v}"
                         for k, v in record.items())
        self.point_info.object = f"**Point** {text}"

    def _current_point(self) -> dict[str, float] | None:
        """Every multi-valued dim at the clicked point / sliders (None before any click when
        there is a map to click)."""
        ds = self.ds
        multi = [str(d) for d in ds.dims if ds.sizes[d] > 1]
        point = dict(self.selection())
        if self.x.value and self.y.value:
            if self.tapped is None:
                return None
            point.update(self.tapped)
        for d in multi:
            if d not in point:
                values = np.asarray(ds[d].values)
                point[d] = float(values[len(values) // 2])
        for d in ds.dims:
            if ds.sizes[d] == 1:
                point[str(d)] = float(ds[d].values[0])
        return point

    # --- the new-grid form --------------------------------------------------------------------
    def form_spec(self) -> GridSpec:
        """The form as a grid spec, through the one validation path."""
        axes: dict[str, Any] = {}
        params: dict[str, float] = {}
        for name, widget in self.form_inputs.items():
            text = (widget.value or "").strip()
            if not text:
                continue
            try:
                if ":" in text:
                    start, stop, num = (p.strip() for p in text.split(":"))
                    axes[name] = {"start": float(start), "stop": float(stop), "num": int(num)}
                elif "," in text:
                    axes[name] = [float(p) for p in text.split(",") if p.strip()]
                else:
                    params[name] = float(text)
            except ValueError:
                raise ParameterError(name, text, "a number, start:stop:num or a list "
                                                 "a, b, c") from None
        spec: dict[str, Any] = {"model": "single_level", "params": params, "axes": axes}
        if self.form_name.value.strip():
            spec["name"] = self.form_name.value.strip()
        # the same limits as POST /api/grids, counted before any axis is built
        return spec_from_request(spec, max_points=self.config.max_grid_points,
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
