"""Zero-frequency current noise of any Pauli model from full counting statistics.

A Pauli (sequential-tunnelling) model is a Markov jump process on many-body states. Transition
``k`` takes state ``ii[k]`` to ``jj[k]`` by adding one electron; through lead ``v`` it happens
at rate ``W_in[..., v, k]`` and its reverse (``jj[k] -> ii[k]``, the electron leaves into lead
``v``) at rate ``W_out[..., v, k]``. With ``dp/dt = L p`` (``L[j, i]`` the total rate
``i -> j``, ``L[i, i]`` minus the total rate out of ``i``) and ``p`` the stationary state
(``L p = 0``, ``1^T p = 1``), count the electrons leaving the reservoir of lead ``lead``, each
jump weighted by ``w_k`` (1 for the particle current; ``E_j - E_i - mu_v`` for the heat
current). Tilting the jumps by ``exp(+chi w_k)`` (into the dot) and ``exp(-chi w_k)`` (out of
it) gives ``L(chi)``, whose leading eigenvalue ``lambda(chi)`` is the cumulant generating
function rate of the counted quantity. Rayleigh-Schrödinger perturbation theory to second
order in ``chi`` gives, with no finite differences (physics-beyond §5; C. Flindt, T. Novotný
and A.-P. Jauho, Europhys. Lett. 69, 475 (2005))::

    <J> = 1^T L1 p
    S   = 1^T L2 p - 2 1^T L1 R L1 p

``L1 = dL/dchi`` and ``L2 = d^2L/dchi^2`` at ``chi = 0`` are the weighted and squared-weighted
jump matrices of the counted lead, and ``R`` is the group (Drazin) inverse of ``L`` (``L R =
R L = 1 - p 1^T``, ``R p = 0``, ``1^T R = 0``). ``R y`` for ``1^T y = 0`` is the solution of
``(L - p 1^T) z = y`` (then ``1^T z = 0`` and ``L z = y``), one batched linear solve; ``y`` is
``L1 p - p <J>``. ``S`` is the growth rate of the variance of the counted quantity,
``lim Var(N(t))/t = int dt <dI(t) dI(0)>`` (no factor 2), the convention of the closed form
:func:`phasemap.physics.noise.single_level_noise`.

Batched over any leading dimensions with numpy (the number of states is small). Accuracy:
``1^T L2 p`` is a sum of positive flows; the correction term is a solve with the generator, so
its relative error is the generator's condition number (rates over many decades degrade it)
times the rounding; near equilibrium the correction is second order in the current and the
result is as accurate as the flows. The rounding error is relative to the gross flow through
the counted lead, so a lead much more strongly coupled than the rest costs digits (
:func:`particle_noise` counts a two-terminal particle current at the better lead).
"""

from __future__ import annotations

import numpy as np


def _arrays(W_in, W_out, ii, jj, p):
    W_in = np.asarray(W_in, dtype=np.float64)
    W_out = np.asarray(W_out, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    ii = np.asarray(ii, dtype=np.intp)
    jj = np.asarray(jj, dtype=np.intp)
    if W_in.shape[-1] != ii.size or W_out.shape[-1] != ii.size or jj.size != ii.size:
        raise ValueError("W_in[..., v, k], W_out[..., v, k], ii[k], jj[k] disagree on the "
                         "number of transitions k")
    batch = np.broadcast_shapes(W_in.shape[:-2], W_out.shape[:-2], p.shape[:-1])
    m = max(W_in.shape[-2], W_out.shape[-2])
    W_in = np.broadcast_to(W_in, (*batch, m, ii.size))
    W_out = np.broadcast_to(W_out, (*batch, m, ii.size))
    p = np.broadcast_to(p, (*batch, p.shape[-1]))
    return W_in, W_out, ii, jj, p, batch


def generator(W_in, W_out, ii, jj, n: int) -> np.ndarray:
    """The rate matrix ``L[..., j, i]`` (rate ``i -> j``, columns summing to zero).

    Parameters
    ----------
    W_in, W_out : array_like (..., n_leads, n_transitions)
        Rates of each transition ``ii[k] -> jj[k]`` and of its reverse, per lead [gamma0].
    ii, jj : array_like of int (n_transitions,)
        Initial and final state of each electron-adding transition.
    n : int
        Number of states.
    """
    W_in = np.asarray(W_in, dtype=np.float64)
    W_out = np.asarray(W_out, dtype=np.float64)
    tin, tout = W_in.sum(axis=-2), W_out.sum(axis=-2)
    L = np.zeros((*np.broadcast_shapes(tin.shape[:-1], tout.shape[:-1]), n, n))
    for k, (i, j) in enumerate(zip(np.asarray(ii), np.asarray(jj), strict=True)):
        L[..., j, i] += tin[..., k]
        L[..., i, j] += tout[..., k]
    idx = np.arange(n)
    L[..., idx, idx] = -L.sum(axis=-2)
    return L


def mean_and_noise(W_in, W_out, ii, jj, p, lead: int = 0, weight=None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and zero-frequency noise of the current out of reservoir ``lead``.

    Parameters
    ----------
    W_in : array_like (..., n_leads, n_transitions)
        ``W_in[..., v, k]``: rate of transition ``ii[k] -> jj[k]`` (an electron enters the dot
        from lead ``v``) [gamma0].
    W_out : array_like (..., n_leads, n_transitions)
        Rate of the reverse transition ``jj[k] -> ii[k]`` (the electron leaves into lead ``v``)
        [gamma0].
    ii, jj : array_like of int (n_transitions,)
        States before and after each electron-adding transition.
    p : array_like (..., n_states)
        Stationary occupation probabilities (``L p = 0``, summing to 1), e.g. from
        :func:`phasemap.physics.pauli.solve`.
    lead : int
        The lead whose reservoir is counted (0: left).
    weight : array_like (..., n_transitions), optional
        Amount carried by one electron of transition ``k`` through ``lead``: 1 (default) for
        the particle current, ``E_jj[k] - E_ii[k] - mu_lead`` [E0] for the heat current.

    Returns
    -------
    mean, noise : numpy.ndarray (...)
        ``<J>`` (flow out of the reservoir) and ``S = lim Var(N(t))/t`` [gamma0 times the
        weight's units to the first and second power]. Broadcast over the leading dimensions.
    """
    W_in, W_out, ii, jj, p, batch = _arrays(W_in, W_out, ii, jj, p)
    n = p.shape[-1]
    if not 0 <= lead < W_in.shape[-2]:
        raise ValueError(f"lead={lead} is not one of the {W_in.shape[-2]} leads")
    w = np.ones(ii.size) if weight is None else np.asarray(weight, dtype=np.float64)
    w = np.broadcast_to(w, (*batch, ii.size))
    a_in = w * W_in[..., lead, :]     # L1 entries, transitions into the dot
    a_out = w * W_out[..., lead, :]   # minus the L1 entries, transitions out of the dot
    p_i = p[..., ii]
    p_j = p[..., jj]
    mean = (a_in * p_i).sum(axis=-1) - (a_out * p_j).sum(axis=-1)
    second = (w * (a_in * p_i + a_out * p_j)).sum(axis=-1)   # 1^T L2 p: positive flows
    # y = L1 p - p <J> (so 1^T y = 0); z = R y by one solve with L - p 1^T.
    y = np.zeros((*batch, n))
    for k, (i, j) in enumerate(zip(ii, jj, strict=True)):
        y[..., j] += a_in[..., k] * p_i[..., k]
        y[..., i] -= a_out[..., k] * p_j[..., k]
    y -= p * mean[..., None]
    A = generator(W_in, W_out, ii, jj, n) - p[..., :, None]
    z = _solve(A, y)
    # 1^T L1 z = sum_k a_in z_i - a_out z_j
    corr = (a_in * z[..., ii]).sum(axis=-1) - (a_out * z[..., jj]).sum(axis=-1)
    return mean + 0.0, second - 2.0 * corr + 0.0


def _solve(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``z`` with ``A z = y``, batched; least squares at points where ``A`` is singular.

    ``A = L - p 1^T`` is singular where the chain has more than one closed class, which
    happens only when rates round to exactly 0 (``T`` near 0: a state no rate enters or
    leaves). ``y`` and the rates that read ``z`` vanish on the classes ``p`` does not
    occupy, so any solution gives the same noise; least squares picks one.
    """
    try:
        return np.linalg.solve(A, y[..., None])[..., 0]
    except np.linalg.LinAlgError:
        pass
    n = y.shape[-1]
    flat_A, flat_y = A.reshape(-1, n, n), y.reshape(-1, n)
    z = np.empty_like(flat_y)
    for k in range(flat_y.shape[0]):
        try:
            z[k] = np.linalg.solve(flat_A[k], flat_y[k])
        except np.linalg.LinAlgError:
            z[k] = np.linalg.lstsq(flat_A[k], flat_y[k], rcond=None)[0]
    return z.reshape(y.shape)


def noise(W_in, W_out, ii, jj, p, lead: int = 0, weight=None) -> np.ndarray:
    """Zero-frequency noise ``S`` of the current out of reservoir ``lead`` (see
    :func:`mean_and_noise`, which also returns the mean)."""
    return mean_and_noise(W_in, W_out, ii, jj, p, lead, weight)[1]


def particle_noise(W_in, W_out, ii, jj, p) -> np.ndarray:
    """Zero-frequency particle-current noise of a two-terminal device, counted where it is
    most accurate.

    Charge conservation makes the zero-frequency noise the same at both leads, but the
    formula's rounding error is relative to the gross flow through the counted lead, not to
    ``S``: with ``gamma_L >> gamma_R`` counting at L loses ``log10(gamma_L/gamma_R)`` digits
    (6e-11 relative at a ratio 2e5), counting at R none. Pointwise, this counts at the lead
    with the smaller gross flow ``sum_k W_in p_ii + W_out p_jj``.

    Parameters and units as in :func:`mean_and_noise` (two leads, no weight); returns ``S``
    [gamma0].
    """
    W_in, W_out, ii, jj, p, _ = _arrays(W_in, W_out, ii, jj, p)
    if W_in.shape[-2] != 2:
        raise ValueError(f"particle_noise needs two leads, got {W_in.shape[-2]}")
    gross = (W_in * p[..., None, ii] + W_out * p[..., None, jj]).sum(axis=-1)
    S0 = noise(W_in, W_out, ii, jj, p, lead=0)
    S1 = noise(W_in, W_out, ii, jj, p, lead=1)
    return np.where(gross[..., 0] <= gross[..., 1], S0, S1)


def stationary(W_in, W_out, ii, jj, n: int) -> np.ndarray:
    """Stationary state ``p[..., n]`` of the generator, batched.

    The Grassmann-Taksar-Heyman state elimination: no subtraction anywhere, so every
    probability keeps a few ulp of relative accuracy however small it is (a linear solve with
    a normalisation row gets the small ones as differences of order-one numbers). Fine for
    the small state spaces of tests and toy models; :func:`phasemap.physics.pauli.solve` is
    the engine's own route (it also guards against overflow of huge rate ratios).
    """
    L = generator(W_in, W_out, ii, jj, n)
    R = np.swapaxes(L, -1, -2).copy()      # R[..., i, j]: rate i -> j
    idx = np.arange(n)
    R[..., idx, idx] = 0.0
    out = np.zeros(R.shape[:-1])
    for k in range(n - 1, 0, -1):
        sk = R[..., k, :k].sum(axis=-1)
        out[..., k] = sk
        R[..., :k, :k] += R[..., :k, k, None] * (R[..., k, None, :k] / sk[..., None, None])
    p = np.zeros(R.shape[:-1])
    p[..., 0] = 1.0
    for k in range(1, n):
        p[..., k] = (p[..., :k] * R[..., :k, k]).sum(axis=-1) / out[..., k]
    return p / p.sum(axis=-1, keepdims=True)
