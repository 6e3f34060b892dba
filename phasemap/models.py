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
from .physics import pauli as _pauli
from .physics import single_level as _sl
from .physics._vecmath import exp_nonpos, expm1_nonpos

Kernel = Callable[..., dict[str, np.ndarray]]

OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1", "regime", "machine")
OUTPUT_DTYPES = {name: np.dtype("int8") if name in ("regime", "machine") else np.dtype("f8")
                 for name in OUTPUTS}


@dataclass(frozen=True)
class Parameter:
    """One model parameter.

    ``lower``/``upper`` bound the valid range; ``lower_open`` makes the lower bound strict.
    """

    name: str
    units: str
    default: float
    lower: float = -math.inf
    upper: float = math.inf
    lower_open: bool = False
    description: str = ""

    def allowed(self) -> str:
        lo = "(" if self.lower_open or math.isinf(self.lower) else "["
        return f"a finite number in {lo}{self.lower:g}, {self.upper:g}]".replace("inf]", "inf)")

    def violates(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask of values outside the valid range (NaN and inf included)."""
        bad = ~np.isfinite(values)
        bad |= (values <= self.lower) if self.lower_open else (values < self.lower)
        bad |= values > self.upper
        return bad


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
    """A registered model: parameters, outputs, version and kernel."""

    name: str
    version: str
    description: str
    parameters: tuple[Parameter, ...]
    kernel: Kernel
    outputs: tuple[str, ...] = OUTPUTS
    constraints: tuple[Constraint, ...] = ()
    closed_form: bool = False
    #: Outputs the store keeps; the others are derived on read by ``derive``.
    stored: tuple[str, ...] = OUTPUTS
    #: ``derive(stored_outputs: dict, **params) -> dict`` of the outputs not stored.
    derive: Callable[..., dict[str, np.ndarray]] | None = None
    #: ``store_kernel(out=None, **params) -> dict`` of the ``stored`` outputs only, bit-identical
    #: to ``kernel``'s; the store computes shards with it (``out`` maps outputs to preallocated
    #: float64 arrays of the broadcast shape to write into). ``None``: use ``kernel``.
    store_kernel: Callable[..., dict[str, np.ndarray]] | None = None
    #: ``kernel`` also takes ``out=``: a dict of every output, preallocated (float outputs
    #: float64, labels int8) in the broadcast shape, which it fills and returns.
    kernel_out: bool = False
    #: Where the model's approximation holds; ``None``: everywhere in its parameter ranges.
    validity: Validity | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise ParameterError(name, name, f"one of the parameters of model "
                                         f"{self.name!r}: {', '.join(self.param_names)}")

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.parameters}

    def __call__(self, **params) -> dict[str, np.ndarray]:
        """Evaluate the kernel on numpy inputs (defaults filled in, no validation)."""
        args = self.defaults() | params
        return self.kernel(**{k: np.asarray(args[k], dtype=np.float64)
                              for k in self.param_names})


_REGISTRY: dict[str, Model] = {}


def register(model: Model) -> Model:
    """Add ``model`` to the registry (a name can be registered once)."""
    if model.name in _REGISTRY:
        raise ValueError(f"model {model.name!r} is already registered")
    _REGISTRY[model.name] = model
    return model


def get_model(name: str | Model) -> Model:
    """Look a model up by name; unknown names raise :class:`ParameterError`."""
    if isinstance(name, Model):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ParameterError("model", name,
                             f"one of the registered models: {', '.join(sorted(_REGISTRY))}"
                             ) from None


def available_models() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


# --- the single-level dot ---------------------------------------------------------------

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
        out = {n: np.empty(full, dtype=OUTPUT_DTYPES[n]) for n in names}
        kernel(args, [out[n] for n in names])
        return {n: a.reshape(shape) for n, a in out.items()}
    kernel(args, [out[n].reshape(full) for n in names])
    return out


def _single_level_store_kernel(eps, T, dT, dV, mu, gamma_L, gamma_R, out=None):
    out = None if out is None or out.get("J_L") is None else {"J_L": out["J_L"]}
    return _rowwise(_single_level_current, (eps, T, dT, dV, mu, gamma_L, gamma_R), ("J_L",),
                    out)


DERIVED = ("Q_L", "Q_R", "P", "s", "p1", "regime", "machine")


def _single_level_from_current(stored, eps, T, dT, dV, mu, gamma_L, gamma_R):
    return _rowwise(_single_level_derive, (stored["J_L"], eps, T, dT, dV, mu, gamma_L, gamma_R),
                    DERIVED)


def _single_level_kernel(eps, T, dT, dV, mu, gamma_L, gamma_R, out=None
                         ) -> dict[str, np.ndarray]:
    return _rowwise(_single_level_fused, (eps, T, dT, dV, mu, gamma_L, gamma_R), OUTPUTS, out)


def _pauli_single_dot_kernel(eps, T, dT, dV, mu, gamma_L, gamma_R) -> dict[str, np.ndarray]:
    eps, T, dT, dV, mu, gL, gR = np.broadcast_arrays(eps, T, dT, dV, mu, gamma_L, gamma_R)
    shape = eps.shape
    energies = np.stack([np.zeros(shape), eps], axis=-1)            # states |0>, |1>
    charges = np.array([0, 1])
    gamma = np.zeros((*shape, 2, 2, 2))
    gamma[..., 0, 0, 1] = gL
    gamma[..., 1, 0, 1] = gR
    mus = np.stack([mu + 0.5 * dV, mu - 0.5 * dV], axis=-1)
    temps = np.stack([T + 0.5 * dT, T - 0.5 * dT], axis=-1)
    res = _pauli.solve(energies, charges, gamma, mus, temps)
    J = res.particle_current[..., 0]
    QL = res.heat_current[..., 0]
    QR = -res.heat_current[..., 1]
    P = dV * J  # two terminals: energy conservation gives Q_R - Q_L = dV J_L
    reg, mach = regimes.classify(dT, dV, J, QL, QR, P)
    return {"J_L": J, "Q_L": QL, "Q_R": QR, "P": P, "s": res.entropy_production,
            "p1": res.p[..., 1], "regime": reg, "machine": mach}


single_level = register(Model(
    name="single_level",
    version="1.2.0",
    description="Single-level quantum dot between two reservoirs, sequential tunnelling, "
                "closed form (Zhang & Lü, PRE 111, 044112 (2025))",
    parameters=SINGLE_DOT_PARAMETERS,
    kernel=_single_level_kernel,
    constraints=(POSITIVE_LEAD_TEMPERATURES,),
    closed_form=True,
    kernel_out=True,
    stored=("J_L",),
    derive=_single_level_from_current,
    store_kernel=_single_level_store_kernel,
    validity=SEQUENTIAL_TUNNELLING,
))

pauli = register(Model(
    name="pauli",
    version="1.0.0",
    description="The same dot solved numerically by the generic batched Pauli master-equation "
                "engine (phasemap.physics.pauli)",
    parameters=SINGLE_DOT_PARAMETERS,
    kernel=_pauli_single_dot_kernel,
    constraints=(POSITIVE_LEAD_TEMPERATURES,),
    validity=SEQUENTIAL_TUNNELLING,
))
