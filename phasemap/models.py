"""Models as a registry: what a model takes, what it returns, and how it is evaluated.

A :class:`Model` declares its parameters (name, units, default, valid range), its outputs, a
version string (part of every cache key: bump it whenever the numbers a model returns could
change) and a kernel: a pure function of numpy arrays, broadcast over its arguments, returning
every output including the two labels. Models never see xarray or the store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from . import regimes
from ._rows import BLOCK, RowKernel, at, block, block_done, block_out, work_codes, work_rows
from .errors import ParameterError
from .physics import anderson as _anderson
from .physics import coulomb_coupled_dots as _ccdd
from .physics import fcs as _fcs
from .physics import merit as _merit
from .physics import noise as _noise
from .physics import pauli as _pauli
from .physics import single_level as _sl
from .physics._vecmath import exp_nonpos, expm1_nonpos
from .variables import VARIABLES

Kernel = Callable[..., dict[str, np.ndarray]]


@dataclass(frozen=True)
class Output:
    """One output of a model: what it is, its units and how it is stored.

    ``dtype`` is ``"f8"`` for a physical quantity (stored as float64 or float32, as a grid asks)
    or ``"i1"`` for a label, whose codes are the indices of ``flags`` (CF ``flag_values`` and
    ``flag_meanings``). ``signed`` quantities change sign across the grid (plots centre their
    colour map on 0); unsigned ones (probabilities, noise, efficiencies) do not.
    """

    name: str
    units: str = "1"
    long_name: str = ""
    symbol: str = ""
    dtype: str = "f8"
    flags: tuple[str, ...] = ()
    signed: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in ("f8", "i1"):
            raise ValueError(f"output {self.name!r}: dtype must be 'f8' or 'i1', "
                             f"not {self.dtype!r}")
        if (self.dtype == "i1") != bool(self.flags):
            raise ValueError(f"output {self.name!r}: a label (dtype 'i1') needs flags, "
                             "and only a label has them")

    @property
    def is_label(self) -> bool:
        return self.dtype == "i1"

    def numpy_dtype(self, float_dtype: Any = np.float64) -> np.dtype:
        """The array dtype: int8 for labels, ``float_dtype`` for quantities."""
        return np.dtype("int8") if self.is_label else np.dtype(float_dtype)

    def attrs(self) -> dict[str, Any]:
        """CF attributes (units, long_name, flag_values/flag_meanings) and the plot symbol."""
        out: dict[str, Any] = {"long_name": self.long_name or self.name,
                               "symbol": self.symbol or self.name}
        if self.is_label:
            out["flag_values"] = np.arange(len(self.flags), dtype=np.int8)
            out["flag_meanings"] = " ".join(self.flags)
        else:
            out["units"] = self.units
        return out


def standard_output(name: str) -> Output:
    """The declaration of an output named in phasemap's table of quantities.

    Models may name outputs of :data:`phasemap.variables.VARIABLES` by their name alone
    (``"J_L"``, ``"regime"``, ...); anything else they declare with :class:`Output`.
    """
    entry = VARIABLES.get(name)
    if entry is None or entry.get("kind") == "parameter":
        raise ValueError(f"output {name!r} is not in phasemap.variables.VARIABLES: declare it "
                         "with phasemap.models.Output(name, units=..., long_name=...)")
    flags = tuple(entry["flag_meanings"].split()) if "flag_meanings" in entry else ()
    return Output(name, units=entry.get("units", "1"), long_name=entry.get("long_name", name),
                  symbol=entry.get("symbol", name), dtype="i1" if flags else "f8",
                  flags=flags, signed=entry.get("signed", not flags))


OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1", "regime", "machine")


@dataclass(frozen=True)
class Parameter:
    """One model parameter.

    ``lower``/``upper`` bound the valid range; ``lower_open`` makes the lower bound strict.
    ``symbol`` and ``description`` label it in plots and metadata (the symbol defaults to the
    name; parameters of phasemap's table take its symbol and long name).
    """

    name: str
    units: str
    default: float
    lower: float = -math.inf
    upper: float = math.inf
    lower_open: bool = False
    description: str = ""
    symbol: str = ""

    def allowed(self) -> str:
        lo = "(" if self.lower_open or math.isinf(self.lower) else "["
        return f"a finite number in {lo}{self.lower:g}, {self.upper:g}]".replace("inf]", "inf)")

    def violates(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of values outside the valid range (NaN and inf included)."""
        bad = ~np.isfinite(values)
        bad |= (values <= self.lower) if self.lower_open else (values < self.lower)
        bad |= values > self.upper
        return bad

    def attrs(self) -> dict[str, Any]:
        """CF attributes of the parameter as a coordinate."""
        known = VARIABLES.get(self.name, {})
        return {"units": self.units,
                "long_name": known.get("long_name") or self.description or self.name,
                "symbol": self.symbol or known.get("symbol") or self.name}


@dataclass(frozen=True)
class Constraint:
    """A condition on several parameters jointly (e.g. ``T_R > 0``).

    ``check`` takes the broadcast parameter arrays it names and returns a mask of *bad* points.
    """

    params: tuple[str, ...]
    check: Callable[..., np.ndarray]
    allowed: str


@dataclass(frozen=True)
class Validity:
    """The domain where a model's approximation holds (not its mathematical domain).

    ``check`` takes the parameters it names (numpy arrays or DataArrays, broadcast) and
    returns a mask that is true where the approximation is valid; ``description`` says what
    it checks, in words and with the factor used.
    """

    params: tuple[str, ...]
    check: Callable[..., Any]
    description: str


@dataclass(frozen=True)
class Model:
    """A registered model: parameters, outputs, version and kernel.

    ``outputs`` lists the model's outputs in order, each an :class:`Output` or the name of one
    in phasemap's table (``"J_L"``); after construction ``outputs`` holds the names and
    :meth:`output` the declarations. Every layer above this one (evaluate, the store, the
    CLI, the HTTP API, the explorer, the figures) reads names, units, dtypes and labels from
    here, so a registered model works everywhere with no other change.
    """

    name: str
    version: str
    description: str
    parameters: tuple[Parameter, ...]
    kernel: Kernel
    outputs: tuple[Any, ...] = OUTPUTS
    constraints: tuple[Constraint, ...] = ()
    closed_form: bool = False
    #: Outputs the store keeps; the others are derived on read by ``derive``. Default: all.
    stored: tuple[str, ...] | None = None
    #: ``derive(stored_outputs: dict, **params) -> dict`` of the outputs not stored.
    derive: Callable[..., dict[str, np.ndarray]] | None = None
    #: ``store_kernel(out=None, **params) -> dict`` of the ``stored`` outputs only, bit-identical
    #: to ``kernel``'s; the store computes shards with it (``out`` maps outputs to preallocated
    #: float64 arrays of the broadcast shape to write into). ``None``: use ``kernel``.
    store_kernel: Callable[..., dict[str, np.ndarray]] | None = None
    #: ``kernel`` also takes ``out=``: a dict of every output, preallocated (float outputs
    #: float64, labels int8) in the broadcast shape, which it fills and returns.
    kernel_out: bool = False
    #: Citation of the model's source (dataset attribute ``references``).
    references: str = ""
    #: ``post(outputs: dict, params: dict) -> dict``: outputs computed from the kernel's
    #: (or ``derive``'s) outputs and the parameters, e.g. figures of merit. Their names are
    #: listed in ``outputs`` like any other; ``kernel`` and ``derive`` are wrapped so that
    #: every caller (evaluate, the store) gets them, and they are never stored.
    post: Callable[[dict, dict], dict] | None = None
    post_outputs: tuple[str, ...] = ()
    #: A store shard holds about ``2**shard_log2`` points (at most 2**18): the unit one task
    #: computes, and what a request smaller than a shard pads to. Costly models (~10-100 us
    #: a point) take smaller shards so that a small map stays cheap.
    shard_log2: int = 18
    #: Where the model's approximation holds; ``None``: everywhere in its parameter ranges.
    validity: Validity | None = None
    extra: Mapping[str, object] = field(default_factory=dict)
    _specs: Mapping[str, Output] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        specs = {}
        for o in self.outputs:
            spec = o if isinstance(o, Output) else standard_output(str(o))
            if spec.name in specs:
                raise ValueError(f"model {self.name!r}: output {spec.name!r} declared twice")
            specs[spec.name] = spec
        clash = set(specs) & {p.name for p in self.parameters}
        if clash:
            raise ValueError(f"model {self.name!r}: {sorted(clash)} are both parameters and "
                             "outputs")
        object.__setattr__(self, "outputs", tuple(specs))
        object.__setattr__(self, "_specs", specs)
        stored = tuple(s for s in specs if s not in self.post_outputs) \
            if self.stored is None else tuple(self.stored)
        unknown = [s for s in stored if s not in specs]
        if unknown:
            raise ValueError(f"model {self.name!r}: stored outputs {unknown} are not outputs")
        object.__setattr__(self, "stored", stored)
        if self.post is not None:
            _wrap_post(self)
        missing = set(specs) - set(stored) - set(self.post_outputs)
        if missing and self.derive is None:
            raise ValueError(f"model {self.name!r}: outputs that are not stored need derive=")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise ParameterError(name, name, f"one of the parameters of model "
                                         f"{self.name!r}: {', '.join(self.param_names)}")

    def output(self, name: str) -> Output:
        """The declaration of output ``name``."""
        try:
            return self._specs[name]
        except KeyError:
            raise ParameterError("output", name, f"one of the outputs of model {self.name!r}: "
                                 f"{', '.join(self.outputs)}") from None

    def dtype_of(self, name: str, float_dtype: Any = np.float64) -> np.dtype:
        """Array dtype of output ``name``: int8 for labels, ``float_dtype`` otherwise."""
        return self.output(name).numpy_dtype(float_dtype)

    @property
    def labels(self) -> tuple[str, ...]:
        """The outputs that are labels (int8 codes with flag tables)."""
        return tuple(n for n, s in self._specs.items() if s.is_label)

    @property
    def quantities(self) -> tuple[str, ...]:
        """The outputs that are physical quantities (floats)."""
        return tuple(n for n, s in self._specs.items() if not s.is_label)

    def attrs_of(self, name: str) -> dict[str, Any]:
        """CF attributes of a parameter or output of this model ({} for other names)."""
        if name in self._specs:
            return self._specs[name].attrs()
        for p in self.parameters:
            if p.name == name:
                return p.attrs()
        return {}

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.parameters}

    def __call__(self, **params) -> dict[str, np.ndarray]:
        """Evaluate the kernel on numpy inputs (defaults filled in, no validation)."""
        unknown = set(params) - set(self.param_names)
        if unknown:
            name = sorted(unknown)[0]
            raise ParameterError(name, params[name], f"a parameter of model {self.name!r}: "
                                 f"{', '.join(self.param_names)}")
        args = self.defaults() | params
        return self.kernel(**{k: np.asarray(args[k], dtype=np.float64)
                              for k in self.param_names})


def _wrap_post(model: Model) -> None:
    """Make ``model.kernel`` and ``model.derive`` also return ``model.post``'s outputs."""
    post, names = model.post, model.post_outputs
    base = tuple(o for o in model.outputs if o not in names)
    kernel, derive, takes_out = model.kernel, model.derive, model.kernel_out
    assert post is not None

    def full_kernel(**kw):
        out = kw.pop("out", None)
        if takes_out:
            got = kernel(out=None if out is None else {k: out[k] for k in base}, **kw)
        else:
            got = kernel(**kw)
        extra = post(got, kw)
        if out is not None:
            for k in names:
                out[k][...] = extra[k]
            return out
        return {**got, **{k: extra[k] for k in names}}

    object.__setattr__(model, "kernel", full_kernel)
    if derive is not None:
        def full_derive(stored, **kw):
            got = derive(stored, **kw)
            extra = post({**stored, **got}, kw)
            return {**got, **{k: extra[k] for k in names}}

        object.__setattr__(model, "derive", full_derive)


_REGISTRY: dict[str, Model] = {}


def register(model: Model) -> Model:
    """Add ``model`` to the registry (a name can be registered once)."""
    if not isinstance(model, Model):
        raise TypeError(f"register() takes a phasemap.models.Model, not {type(model).__name__}")
    if model.name in _REGISTRY:
        raise ValueError(f"model {model.name!r} is already registered")
    _REGISTRY[model.name] = model
    return model


#: Entry-point group through which installed packages add models (like xarray's backends):
#: ``[project.entry-points."phasemap.models"] my_dot = "my_package.models:my_dot"``.
ENTRY_POINT_GROUP = "phasemap.models"
_entry_points_loaded = False


def _load_entry_points() -> None:
    """Register the models that installed packages declare, once per process.

    Only what is installed is loaded, never a name taken from a request. A broken plug-in is
    reported as a warning naming it, and the other models stay usable.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    import warnings
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            model = ep.load()
            if model.name not in _REGISTRY:
                register(model)
        except Exception as exc:  # a plug-in's own failure must not break phasemap
            warnings.warn(f"phasemap model plug-in {ep.name!r} ({ep.value}) failed to load: "
                          f"{exc!r}", RuntimeWarning, stacklevel=2)


def get_model(name: str | Model) -> Model:
    """Look a model up by name; unknown names raise :class:`ParameterError`."""
    if isinstance(name, Model):
        return name
    try:
        if name not in _REGISTRY:
            _load_entry_points()
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ParameterError("model", name,
                             f"one of the registered models: {', '.join(sorted(_REGISTRY))}"
                             ) from None


def available_models() -> tuple[str, ...]:
    _load_entry_points()
    return tuple(sorted(_REGISTRY))


# --- the single-level dot ---------------------------------------------------------------

PAPER = "Y. Zhang and X. Lü, Phys. Rev. E 111, 044112 (2025), arXiv:2408.07882"

#: Figures of merit of every two-terminal model (docs/merit.md), computed from its outputs.
MERIT_OUTPUTS = ("power", "eta", "eta_over_carnot", "cop", "cop_over_carnot", "cop_heating",
                 "cop_heating_over_carnot", "merit_flag")
#: Current fluctuations: zero-frequency particle-current noise, Fano factor, TUR ratio.
NOISE_OUTPUTS = ("noise_J", "fano", "tur")


def two_terminal_merit(outputs: dict, params: dict) -> dict[str, np.ndarray]:
    """Figures of merit from ``P, Q_L, Q_R`` and the lead temperatures ``T ± dT/2``."""
    T, dT = params["T"], params["dT"]
    return _merit.figures_of_merit(outputs["P"], outputs["Q_L"], outputs["Q_R"],
                                   T + 0.5 * dT, T - 0.5 * dT, dT=dT)


def _single_level_post(outputs: dict, params: dict) -> dict[str, np.ndarray]:
    """Figures of merit and the closed-form noise of the single level."""
    out = two_terminal_merit(outputs, params)
    S = _noise.single_level_noise(*(params[k] for k in ("eps", "T", "dT", "dV", "mu",
                                                         "gamma_L", "gamma_R")))
    out.update(_noise.fluctuation_outputs(S, outputs["J_L"], outputs["s"]))
    return out


SINGLE_DOT_PARAMETERS = (
    Parameter("eps", "E0", 0.0, description="dot level energy"),
    Parameter("T", "E0", 7.5, lower=0.0, lower_open=True, description="mean temperature"),
    Parameter("dT", "E0", 0.0, description="temperature difference T_L - T_R"),
    Parameter("dV", "E0", 0.0, description="bias voltage (mu_L - mu_R)/e"),
    Parameter("mu", "E0", 0.0, description="mean chemical potential"),
    Parameter("gamma_L", "gamma0", 2.0, lower=0.0, lower_open=True,
              description="bare tunnelling rate of the left lead"),
    Parameter("gamma_R", "gamma0", 2.0, lower=0.0, lower_open=True,
              description="bare tunnelling rate of the right lead"),
)

POSITIVE_LEAD_TEMPERATURES = Constraint(
    params=("T", "dT"),
    check=lambda T, dT: ~(T - 0.5 * np.abs(dT) > 0.0),
    allowed="|dT| < 2 T, so that T_L = T + dT/2 > 0 and T_R = T - dT/2 > 0",
)


#: Sequential tunnelling (a Pauli master equation with Fermi-golden-rule rates) treats the
#: level as sharp: its lifetime broadening, the total tunnelling rate gamma_L + gamma_R
#: (hbar = 1), must be small against the thermal width of the leads' Fermi functions, and the
#: colder lead's is the narrower. "Small" is taken as a factor 10 (docs/model.md, "Validity").
BROADENING_FACTOR = 0.1


def _sequential_tunnelling_valid(T, dT, gamma_L, gamma_R):
    return (gamma_L + gamma_R) <= BROADENING_FACTOR * (T - 0.5 * abs(dT))


SEQUENTIAL_TUNNELLING = Validity(
    params=("T", "dT", "gamma_L", "gamma_R"),
    check=_sequential_tunnelling_valid,
    description="sequential tunnelling: level broadening gamma_L + gamma_R at most "
                f"{BROADENING_FACTOR:g} min(T_L, T_R)",
)


# The kernels loop over the last axis themselves (gufuncs with core dimension ``(n)``)
# instead of being called once per element: numba then inlines the scalar functions into one
# loop. Inputs are broadcast to the full shape first (views, no copies) by :func:`_rowwise`;
# each row is taken in contiguous blocks so that the loop over points vectorises, and inputs
# constant along the row are passed as scalars (``phasemap._rows.RowKernel``).


@numba.njit(cache=True, inline="always")
def _inputs(eps, T, dT, dV, mu, gL, gR, start, m, w):
    """The seven parameters' blocks at ``start`` (buffers in work rows 0-6 if needed)."""
    return (block(eps, start, m, w[0]), block(T, start, m, w[1]), block(dT, start, m, w[2]),
            block(dV, start, m, w[3]), block(mu, start, m, w[4]), block(gL, start, m, w[5]),
            block(gR, start, m, w[6]))


@numba.njit(cache=True, inline="always")
def _frame_stage(x0, x1, x2, x3, x4, m, xL, xR, eL, eR, d):
    for k in range(m):
        xL[k], xR[k], eL[k], eR[k], d[k] = _sl.frame(at(x0, k), at(x1, k), at(x2, k), at(x3, k),
                                                     at(x4, k))


@numba.njit(cache=True, inline="always")
def _exp_stage(x, m, z):
    for k in range(m):
        z[k] = exp_nonpos(-abs(x[k]))


@numba.njit(cache=True, inline="always")
def _current_stage(x5, x6, m, xL, xR, d, zL, zR, em, y):
    """``J_L`` into ``y``: ``expm1(-|d|)`` into ``em``, then the quotient."""
    for k in range(m):
        em[k] = expm1_nonpos(-abs(d[k]))
    for k in range(m):
        y[k] = _sl.current_from(xL[k], xR[k], d[k], zL[k], zR[k], em[k], at(x5, k), at(x6, k))


@numba.njit(cache=True, inline="always")
def _outputs_stage(j, x3, x5, x6, m, xL, xR, eL, eR, d, zL, zR, y1, y2, y3, y4, y5):
    for k in range(m):
        y1[k], y2[k], y3[k], y4[k], y5[k] = _sl.outputs_from(
            at(j, k), xL[k], xR[k], eL[k], eR[k], d[k], zL[k], zR[k], at(x3, k), at(x5, k),
            at(x6, k))


@numba.njit(cache=True, inline="always")
def _finite(x):
    return abs(x) < math.inf  # False for NaN and +-inf


@numba.njit(cache=True, inline="always")
def _label_stage(x0, x1, x2, x3, x4, x5, x6, m, j, eL, eR, y1, y2, y3, y4, y5, c0, c1):
    """Both labels from the signs of the factors: ``sign(Q_v) = sign(eps - mu_v) sign(J_L)``,
    ``sign(P) = sign(dV) sign(J_L)`` (exact even where a product underflows), and
    ``undefined`` where an input or an output is not finite."""
    for k in range(m):
        dt, dv = at(x2, k), at(x3, k)
        defined = (_finite(at(x0, k)) & _finite(at(x1, k)) & _finite(dt) & _finite(dv)
                   & _finite(at(x4, k)) & _finite(at(x5, k)) & _finite(at(x6, k))
                   & _finite(j[k]) & _finite(y1[k]) & _finite(y2[k]) & _finite(y3[k])
                   & _finite(y4[k]) & _finite(y5[k]))
        sj = regimes.sign(j[k]) if defined else 0
        c0[k], c1[k] = regimes.codes_from_signs(
            defined, regimes.sign(dt) if defined else 0, regimes.sign(dv) if defined else 0,
            sj, regimes.sign(eL[k]) * sj if defined else 0,
            regimes.sign(eR[k]) * sj if defined else 0,
            regimes.sign(dv) * sj if defined else 0)


# The kernels run each block of points through stages, each a loop of its own: the frame,
# each exponential, the quotient for J_L, the other outputs, the labels. Short loops with
# few live values keep the vector registers free of spills and let the exponentials of
# consecutive points overlap (~1.3x faster than one loop calling ``_sl.point``, same bits:
# ``point`` is built from the same pieces). Block buffers live in one work array per call.


def _fused_body(eps, T, dT, dV, mu, gL, gR, work, J, QL, QR, P, s, p1, regime, machine):
    n = J.shape[0]
    b = min(BLOCK, n)
    w = work_rows(work, 21, b)
    cb = work_codes(work, 21, 2, b)
    xL, xR, eL, eR, d, zL, zR, em = w[7], w[8], w[9], w[10], w[11], w[12], w[13], w[14]
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        x0, x1, x2, x3, x4, x5, x6 = _inputs(eps, T, dT, dV, mu, gL, gR, start, m, w)
        y0, y1, y2 = block_out(J, start, m, w[15]), block_out(QL, start, m, w[16]), \
            block_out(QR, start, m, w[17])
        y3, y4, y5 = block_out(P, start, m, w[18]), block_out(s, start, m, w[19]), \
            block_out(p1, start, m, w[20])
        c0, c1 = block_out(regime, start, m, cb[0]), block_out(machine, start, m, cb[1])
        _frame_stage(x0, x1, x2, x3, x4, m, xL, xR, eL, eR, d)
        _exp_stage(xL, m, zL)
        _exp_stage(xR, m, zR)
        _current_stage(x5, x6, m, xL, xR, d, zL, zR, em, y0)
        _outputs_stage(y0, x3, x5, x6, m, xL, xR, eL, eR, d, zL, zR, y1, y2, y3, y4, y5)
        _label_stage(x0, x1, x2, x3, x4, x5, x6, m, y0, eL, eR, y1, y2, y3, y4, y5,
                     c0, c1)
        for a, row in enumerate((J, QL, QR, P, s, p1)):
            block_done(w[15 + a], start, m, row)
        block_done(cb[0], start, m, regime)
        block_done(cb[1], start, m, machine)


def _derive_body(J, eps, T, dT, dV, mu, gL, gR, work, QL, QR, P, s, p1, regime, machine):
    n = QL.shape[0]
    b = min(BLOCK, n)
    w = work_rows(work, 20, b)
    cb = work_codes(work, 20, 2, b)
    xL, xR, eL, eR, d, zL, zR = w[8], w[9], w[10], w[11], w[12], w[13], w[14]
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        xj = block(J, start, m, w[7])
        x0, x1, x2, x3, x4, x5, x6 = _inputs(eps, T, dT, dV, mu, gL, gR, start, m, w)
        y1, y2, y3 = block_out(QL, start, m, w[15]), block_out(QR, start, m, w[16]), \
            block_out(P, start, m, w[17])
        y4, y5 = block_out(s, start, m, w[18]), block_out(p1, start, m, w[19])
        c0, c1 = block_out(regime, start, m, cb[0]), block_out(machine, start, m, cb[1])
        _frame_stage(x0, x1, x2, x3, x4, m, xL, xR, eL, eR, d)
        _exp_stage(xL, m, zL)
        _exp_stage(xR, m, zR)
        _outputs_stage(xj, x3, x5, x6, m, xL, xR, eL, eR, d, zL, zR, y1, y2, y3, y4, y5)
        _label_stage(x0, x1, x2, x3, x4, x5, x6, m, xj, eL, eR, y1, y2, y3, y4, y5,
                     c0, c1)
        for a, row in enumerate((QL, QR, P, s, p1)):
            block_done(w[15 + a], start, m, row)
        block_done(cb[0], start, m, regime)
        block_done(cb[1], start, m, machine)


def _current_body(eps, T, dT, dV, mu, gL, gR, work, J):
    # J_L as ``_sl.current`` computes it, bit for bit, but each step is a loop of its own
    # over a block of points: the frame, each of the three exponentials, then the quotient.
    # Short loops with few live values keep the vector registers free of spills, and the
    # exponentials of consecutive points overlap; ~1.3x faster than one loop calling
    # ``current`` (docs/performance.md). The store keeps only J_L, so this is its kernel.
    n = J.shape[0]
    b = min(BLOCK, n)
    w = work_rows(work, 14, b)
    xL, xR, d, zL, zR, em = w[7], w[8], w[9], w[10], w[11], w[12]
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        x0, x1, x2, x3, x4, x5, x6 = _inputs(eps, T, dT, dV, mu, gL, gR, start, m, w)
        for k in range(m):  # the frame without eps - mu_v, which only Q_L, Q_R need
            a, c, _, _, e = _sl.frame(at(x0, k), at(x1, k), at(x2, k), at(x3, k), at(x4, k))
            xL[k], xR[k], d[k] = a, c, e
        _exp_stage(xL, m, zL)
        _exp_stage(xR, m, zR)
        y = block_out(J, start, m, w[13])
        _current_stage(x5, x6, m, xL, xR, d, zL, zR, em, y)
        block_done(w[13], start, m, J)


_single_level_fused = RowKernel(_fused_body, ("f8",) * 6 + ("i1", "i1"), work=22)
_single_level_derive = RowKernel(_derive_body, ("f8",) * 5 + ("i1", "i1"), work=21)
_single_level_current = RowKernel(_current_body, ("f8",), work=14)


def _rowwise(kernel: RowKernel, inputs, names, out=None) -> dict[str, np.ndarray]:
    """Call a row kernel on broadcast ``inputs``; fill ``out`` (or new arrays) by name."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in inputs))
    full = shape or (1,)
    args = [np.broadcast_to(np.asarray(a, dtype=np.float64), full) for a in inputs]
    if out is None:
        out = {n: np.empty(full, dtype=np.int8 if n in _LABELS else np.float64)
               for n in names}
        kernel(args, [out[n] for n in names])
        return {n: a.reshape(shape) for n, a in out.items()}
    kernel(args, [out[n].reshape(full) for n in names])
    return out


def _single_level_store_kernel(eps, T, dT, dV, mu, gamma_L, gamma_R, out=None):
    out = None if out is None or out.get("J_L") is None else {"J_L": out["J_L"]}
    return _rowwise(_single_level_current, (eps, T, dT, dV, mu, gamma_L, gamma_R), ("J_L",),
                    out)


DERIVED = ("Q_L", "Q_R", "P", "s", "p1", "regime", "machine")
_LABELS = ("regime", "machine")


def _single_level_from_current(stored, eps, T, dT, dV, mu, gamma_L, gamma_R):
    return _rowwise(_single_level_derive, (stored["J_L"], eps, T, dT, dV, mu, gamma_L, gamma_R),
                    DERIVED)


def _single_level_kernel(eps, T, dT, dV, mu, gamma_L, gamma_R, out=None
                         ) -> dict[str, np.ndarray]:
    return _rowwise(_single_level_fused, (eps, T, dT, dV, mu, gamma_L, gamma_R), OUTPUTS, out)


def _signed_product(a, b):
    """``a * b`` with the sign of its factors even where it underflows; never -0.0."""
    with np.errstate(invalid="ignore"):
        prod = a * b
        prod = np.where((prod == 0.0) & (a != 0.0) & (b != 0.0),
                        np.copysign(_sl.TINY, a) * np.sign(b), prod)
    return np.asarray(prod + 0.0)


def _classify(dT, dV, J, QL, QR, P):
    """:func:`regimes.classify`; NaN (out-of-domain) points get its fall-through labels
    without an ``invalid`` warning, as in the fused kernels."""
    with np.errstate(invalid="ignore"):
        return regimes.classify(dT, dV, J, QL, QR, P)


def _pauli_single_dot_kernel(eps, T, dT, dV, mu, gamma_L, gamma_R) -> dict[str, np.ndarray]:
    eps, T, dT, dV, mu, gL, gR = np.broadcast_arrays(eps, T, dT, dV, mu, gamma_L, gamma_R)
    shape = eps.shape
    energies = np.stack([np.zeros(shape), eps], axis=-1)            # states |0>, |1>
    charges = np.array([0, 1])
    gamma = np.zeros((*shape, 2, 2, 2))
    gamma[..., 0, 0, 1] = gL
    gamma[..., 1, 0, 1] = gR
    mus, mus_lo, temps, temps_lo = _pauli.two_leads(mu, dV, T, dT)
    res = _pauli.solve(energies, charges, gamma, mus, temps, mu_lo=mus_lo, T_lo=temps_lo)
    J = res.particle_current[..., 0]
    QL = res.heat_current[..., 0]
    QR = np.asarray(-res.heat_current[..., 1] + 0.0)
    P = _signed_product(dV, J)  # two terminals: energy conservation gives Q_R - Q_L = dV J_L
    reg, mach = _classify(dT, dV, J, QL, QR, P)
    return {"J_L": J, "Q_L": QL, "Q_R": QR, "P": P, "s": res.entropy_production,
            "p1": res.p[..., 1], "regime": reg, "machine": mach,
            **pauli_fluctuations(res, J, res.entropy_production)}


def pauli_fluctuations(res, J: np.ndarray, s: np.ndarray, lead: int | None = None
                       ) -> dict[str, np.ndarray]:
    """``noise_J``, ``fano``, ``tur`` of a Pauli result from its counting-field generator
    (:mod:`phasemap.physics.fcs`): two leads are counted where it is most accurate, more
    leads at ``lead`` (default 0, the left one)."""
    if res.W_in.shape[-2] == 2 and lead is None:
        S = _fcs.particle_noise(res.W_in, res.W_out, res.ii, res.jj, res.p)
    else:
        S = _fcs.noise(res.W_in, res.W_out, res.ii, res.jj, res.p, lead=lead or 0)
    return _noise.fluctuation_outputs(S, J, s)


single_level = register(Model(
    name="single_level",
    version="1.2.0",
    description="Single-level quantum dot between two reservoirs, sequential tunnelling, "
                "closed form (Zhang & Lü, PRE 111, 044112 (2025))",
    parameters=SINGLE_DOT_PARAMETERS,
    kernel=_single_level_kernel,
    outputs=(*OUTPUTS, *MERIT_OUTPUTS, *NOISE_OUTPUTS),
    post=_single_level_post,
    post_outputs=(*MERIT_OUTPUTS, *NOISE_OUTPUTS),
    constraints=(POSITIVE_LEAD_TEMPERATURES,),
    closed_form=True,
    kernel_out=True,
    stored=("J_L",),
    derive=_single_level_from_current,
    store_kernel=_single_level_store_kernel,
    references=PAPER,
    validity=SEQUENTIAL_TUNNELLING,
))


def single_level_closed_form(eps, T, dT, dV, mu=0.0, gamma_L=2.0, gamma_R=2.0):
    """Steady state of the single-level dot, broadcast over its arguments.

    Parameters
    ----------
    eps : array_like
        Level energy epsilon [energy, k_B = 1 units].
    T : array_like
        Mean temperature (T_L + T_R)/2 [energy]. Must exceed ``|dT|/2``.
    dT : array_like
        Temperature difference T_L - T_R [energy].
    dV : array_like
        Bias (mu_L - mu_R)/e [energy/e].
    mu : array_like
        Mean chemical potential [energy].
    gamma_L, gamma_R : array_like
        Bare tunnelling rates [rate]; > 0.

    Returns
    -------
    dict of str to numpy.ndarray
        ``J_L, Q_L, Q_R, P, s, p1`` (float64), broadcast over the inputs. Out-of-domain input
        (``T_R <= 0``) is the caller's to reject; NaN propagates.
    """
    # the registered model's own row kernel: the very loop evaluate and the store run
    out = single_level(eps=eps, T=T, dT=dT, dV=dV, mu=mu, gamma_L=gamma_L,
                                    gamma_R=gamma_R)
    return {name: out[name] for name in _sl.OUTPUTS}


pauli = register(Model(
    name="pauli",
    version="2.1.0",
    description="The same dot solved numerically by the generic batched Pauli master-equation "
                "engine (phasemap.physics.pauli)",
    parameters=SINGLE_DOT_PARAMETERS,
    kernel=_pauli_single_dot_kernel,
    outputs=(*OUTPUTS, *NOISE_OUTPUTS, *MERIT_OUTPUTS),
    post=two_terminal_merit,
    post_outputs=MERIT_OUTPUTS,
    constraints=(POSITIVE_LEAD_TEMPERATURES,),
    references=PAPER,
    validity=SEQUENTIAL_TUNNELLING,
    shard_log2=14,
))


# --- the resonant level (coherent, Landauer) --------------------------------------------

from .physics import resonant_level as _rl  # noqa: E402  (this section is self-contained)

RESONANT_LEVEL_OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "noise_J", "fano", "tur", "regime",
                          "machine")


def _resonant_level_kernel(eps, T, dT, dV, mu, gamma_L, gamma_R) -> dict[str, np.ndarray]:
    """Every output of the resonant level: currents (closed form), noise (quadrature),
    Fano factor ``noise_J/|J_L|`` and TUR ratio ``s noise_J / J_L^2`` (NaN where
    ``J_L = 0``), labels from the signs of ``J_L``, ``Q_L``, ``Q_R`` and ``P = dV J_L``, which
    :func:`phasemap.physics.resonant_level.currents` guarantees."""
    out = _rl.currents(eps, T, dT, dV, mu, gamma_L, gamma_R)
    S = np.broadcast_to(_rl.noise(eps, T, dT, dV, mu, gamma_L, gamma_R), out["J_L"].shape)
    J = out["J_L"]
    absJ = np.abs(J)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fano = np.where(J != 0.0, S / absJ, np.nan)
        # (s/|J|)(S/|J|) rather than s S / J^2: J^2 underflows long before the ratio does
        tur = np.where(J != 0.0, (out["s"] / absJ) * fano, np.nan)
    regime, machine = regimes.classify(dT, dV, J, out["Q_L"], out["Q_R"], out["P"])
    return {"J_L": J, "Q_L": out["Q_L"], "Q_R": out["Q_R"], "P": out["P"], "s": out["s"],
            "noise_J": S + 0.0, "fano": fano, "tur": tur,
            "regime": np.asarray(regime, dtype=np.int8),
            "machine": np.asarray(machine, dtype=np.int8)}


resonant_level = register(Model(
    name="resonant_level",
    version="1.1.0",
    description="Non-interacting level with lifetime broadening between two reservoirs, "
                "coherent (Landauer) transport, exact at any coupling; closed form through "
                "the digamma function (docs/model.md, 'The resonant level'); tends to "
                "single_level as (gamma_L + gamma_R)/T -> 0",
    parameters=SINGLE_DOT_PARAMETERS,
    kernel=_resonant_level_kernel,
    outputs=(*RESONANT_LEVEL_OUTPUTS, *MERIT_OUTPUTS),
    post=two_terminal_merit,
    post_outputs=MERIT_OUTPUTS,
    constraints=(POSITIVE_LEAD_TEMPERATURES,),
    closed_form=True,
    stored=RESONANT_LEVEL_OUTPUTS,
    extra={"validity": "exact at any coupling gamma/T (non-interacting level, Landauer)"},
    references=PAPER + "; Landauer formula with a Lorentzian transmission",
    shard_log2=12,
))


# --- models on the generic Pauli engine ---------------------------------------------------


def two_lead_outputs(res, dV) -> dict[str, np.ndarray]:
    """``J_L, Q_L, Q_R, P, s`` of the leads (L, R) = (0, 1) of a Pauli result: the engine's
    currents leave each reservoir, Q_R is the heat *entering* R, and ``P = dV J_L`` (energy
    conservation) is signed from its factors, as the labels need."""
    J = res.particle_current[..., 0]
    return {"J_L": J, "Q_L": res.heat_current[..., 0],
            "Q_R": np.asarray(-res.heat_current[..., 1] + 0.0),
            "P": _signed_product(dV, J), "s": res.entropy_production}


ANDERSON_OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "n", *NOISE_OUTPUTS, "regime", "machine")


def _anderson_kernel(eps, U, T, dT, dV, mu, gamma_L, gamma_R) -> dict[str, np.ndarray]:
    eps, U, T, dT, dV, mu, gL, gR = np.broadcast_arrays(eps, U, T, dT, dV, mu, gamma_L,
                                                        gamma_R)
    res = _anderson.solve(eps, U, T, dT, dV, mu, gL, gR)
    out = two_lead_outputs(res, dV)
    out["n"] = _anderson.mean_charge(res.p)
    out.update(pauli_fluctuations(res, out["J_L"], out["s"]))
    out["regime"], out["machine"] = _classify(dT, dV, out["J_L"], out["Q_L"], out["Q_R"],
                                              out["P"])
    return out


anderson = register(Model(
    name="anderson",
    version="1.1.0",
    description="Spin-degenerate level with charging energy U (states 0, up, down, 2) between "
                "two reservoirs, sequential tunnelling, generic Pauli engine",
    parameters=(
        SINGLE_DOT_PARAMETERS[0],
        Parameter("U", "E0", 5.0, lower=0.0, description="charging energy of double occupation"),
        *SINGLE_DOT_PARAMETERS[1:5],
        Parameter("gamma_L", "gamma0", 2.0, lower=0.0, lower_open=True,
                  description="bare tunnelling rate per spin channel, left lead"),
        Parameter("gamma_R", "gamma0", 2.0, lower=0.0, lower_open=True,
                  description="bare tunnelling rate per spin channel, right lead"),
    ),
    kernel=_anderson_kernel,
    outputs=(*ANDERSON_OUTPUTS, *MERIT_OUTPUTS),
    post=two_terminal_merit,
    post_outputs=MERIT_OUTPUTS,
    stored=ANDERSON_OUTPUTS,
    constraints=(POSITIVE_LEAD_TEMPERATURES,),
    validity=SEQUENTIAL_TUNNELLING,
    shard_log2=12,
))


CCDD_OUTPUTS = ("J_L", "Q_L", "Q_R", "Q_G", "P", "s", *NOISE_OUTPUTS, "regime", "machine")


def ccdd_labels(dT, dV, T, T_G, J, QL, QR, P):
    """Labels of the L-R conductor with reservoir G as a third source (docs/regimes.md).

    The paper's rules on ``(dT, dV, J_L, Q_L, Q_R, P = dV J_L)`` in the forward frame of the
    L-R affinities; G is a heat source, not a bias. One change: at ``dT = dV = 0`` the point is
    ``equilibrium`` only if G is at the leads' temperature (``T_G = T``; ``mu_G`` does not
    drive: G exchanges no net charge); otherwise G alone drives a current, the L-R conductor
    has no forward direction and the point is labelled ``reversible`` if ``J_L = 0``, else
    ``conventional``.
    """
    reg, mach = _classify(dT, dV, J, QL, QR, P)
    driven = (dT == 0.0) & (dV == 0.0) & (T_G != T)
    reg = np.where(driven, np.where(J == 0.0, regimes.REVERSIBLE, regimes.CONVENTIONAL),
                   reg).astype(np.int8)
    return reg, mach


def _ccdd_kernel(eps, eps_G, U, T, dT, dV, mu, T_G, mu_G, gamma_L, gamma_R, gamma_G,
                 gamma_L_U, gamma_R_U) -> dict[str, np.ndarray]:
    args = np.broadcast_arrays(eps, eps_G, U, T, dT, dV, mu, T_G, mu_G, gamma_L, gamma_R,
                               gamma_G, gamma_L_U, gamma_R_U)
    res = _ccdd.solve(*args)
    T, dT, dV, T_G = args[3], args[4], args[5], args[7]
    out = two_lead_outputs(res, dV)
    out["Q_G"] = res.heat_current[..., 2]
    out.update(pauli_fluctuations(res, out["J_L"], out["s"], lead=0))
    out["regime"], out["machine"] = ccdd_labels(dT, dV, T, T_G, out["J_L"], out["Q_L"],
                                                out["Q_R"], out["P"])
    return {name: out[name] for name in CCDD_OUTPUTS}


coulomb_coupled_dots = register(Model(
    name="coulomb_coupled_dots",
    version="1.1.0",
    description="Conductor dot between L and R capacitively coupled (U) to a gate dot fed by "
                "a third reservoir G (Sanchez-Buttiker harvester), generic Pauli engine",
    parameters=(
        Parameter("eps", "E0", 0.0, description="level of the conductor dot"),
        Parameter("eps_G", "E0", 0.0, description="level of the gate dot"),
        Parameter("U", "E0", 5.0, description="interdot charging energy"),
        *SINGLE_DOT_PARAMETERS[1:5],
        Parameter("T_G", "E0", 7.5, lower=0.0, lower_open=True,
                  description="temperature of reservoir G"),
        Parameter("mu_G", "E0", 0.0, description="chemical potential of reservoir G"),
        *SINGLE_DOT_PARAMETERS[5:7],
        Parameter("gamma_G", "gamma0", 2.0, lower=0.0, lower_open=True,
                  description="bare tunnelling rate of the gate dot to G"),
        Parameter("gamma_L_U", "gamma0", 2.0, lower=0.0, lower_open=True,
                  description="left-lead rate of the conductor dot with the gate dot full"),
        Parameter("gamma_R_U", "gamma0", 2.0, lower=0.0, lower_open=True,
                  description="right-lead rate of the conductor dot with the gate dot full"),
    ),
    kernel=_ccdd_kernel,
    outputs=CCDD_OUTPUTS,
    stored=CCDD_OUTPUTS,
    constraints=(POSITIVE_LEAD_TEMPERATURES,),
    validity=SEQUENTIAL_TUNNELLING,
    shard_log2=12,
))
