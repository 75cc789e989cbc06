"""Per-simulation parameters: the overridable keys, broadcasting of values, the kernel's parameter table."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

PARAMETERS: dict[str, str] = {
    "model.tau": "MPR time constant tau (model time units)",
    "model.I": "MPR external current I",
    "model.Delta": "MPR half-width of the excitability distribution Delta",
    "model.J": "MPR synaptic weight J",
    "model.eta": "MPR mean excitability eta (scalar or one per region)",
    "model.cr": "MPR weight of the coupling through r",
    "model.cv": "MPR weight of the coupling through V (0 skips the V sum)",
    "coupling.a": "Linear coupling scale a (global coupling G)",
    "coupling.b": "Linear coupling offset b",
    "integrator.noise.nsig": "additive noise nsig, noise = sqrt(2 nsig dt) z; scalar or (nsig_r, nsig_V)",
}
# rows of the per-lane parameter table (derived as TVB evaluates them, so rounding matches)
P_INV_TAU, P_DELTA_PT, P_PI2TAU2, P_JTAU, P_ETA, P_I, P_CR, P_CV, P_A, P_B, P_SIG_R, P_SIG_V = range(12)
# and for the adaptive scheme: the local rate of the (r, V) flow is ~ 2 |1/tau| max(|V|, pi |tau| r) (the
# Jacobian's eigenvalues are 2V/tau +- 2i pi r for large r)
P_RATE, P_PITAU = 12, 13
# and for the fast Heun step: TVB's dfun with 1/tau multiplied in and the constant drive summed, once per
# simulation (fewer rows to load and fewer operations per node-step than TVB's order; the exact step uses
# the rows above).  dr = F_DR + F_2T V r;  dV = INV_TAU V^2 - F_PP r^2 + F_J r + F_0 + F_AR S_r + F_AV S_V,
# with S_r, S_V the delayed sums (F_AV only where the V sum is computed: otherwise cv b is in F_0).
P_F_DR, P_F_2T, P_F_PP, P_F_J, P_F_0, P_F_AR, P_F_AV = range(14, 21)
N_PAR = 21
MODEL_KEYS = ("tau", "I", "Delta", "J", "eta", "cr", "cv")
NSIG = "integrator.noise.nsig"


def as_fixed(key: str, value, n: int) -> np.ndarray:
    """A fixed (engine-wide) value as (N,) float64, or (2, N) for nsig; ValueError on a bad shape or value.

    Checked here, once, when the engine is built; :func:`resolve` checks only the per-simulation values."""
    out = _fixed_shape(key, np.asarray(value, dtype=np.float64), n)
    _check_domain(key, out)
    return out


def _check_domain(key: str, a: np.ndarray) -> None:
    if key == NSIG and np.any(a < 0):
        raise ValueError("must be >= 0")
    if key == "model.tau" and np.any(a == 0):
        raise ValueError("must be non-zero")


def _fixed_shape(key: str, a: np.ndarray, n: int) -> np.ndarray:
    if key == NSIG:
        if a.size == 1:
            return np.full((2, n), float(a.reshape(-1)[0]))
        if a.shape == (2,):
            return np.repeat(a[:, None], n, axis=1)
        if a.shape == (n,):
            return np.vstack([a, a])
        if a.shape == (2, n):
            return a.copy()
        raise ValueError(f"{key}: shape {a.shape}, expected a scalar, (2,), ({n},) or (2, {n})")
    if a.size == 1:
        return np.full(n, float(a.reshape(-1)[0]))
    if a.shape == (n,):
        return a.copy()
    raise ValueError(f"{key}: shape {a.shape}, expected a scalar or one value per region ({n},)")


def resolve(fixed: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray], nsim: int,
            n: int) -> dict[str, np.ndarray]:
    """Values per simulation: (B, N) per key, (B, 2, N) for nsig; keys not given take the fixed values."""
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown simulation parameter(s) {unknown}; known: {sorted(PARAMETERS)}")
    out = {}
    for key in PARAMETERS:
        if key not in values:
            base = fixed[key]
            out[key] = np.broadcast_to(base, (nsim,) + base.shape)
            continue
        a = np.asarray(values[key], dtype=np.float64)
        if key == NSIG:
            if a.shape == (nsim,):
                a = np.broadcast_to(a[:, None, None], (nsim, 2, n))
            elif a.shape == (nsim, 2) and n != 2:
                a = np.broadcast_to(a[:, :, None], (nsim, 2, n))
            elif a.shape == (nsim, n):
                a = np.broadcast_to(a[:, None, :], (nsim, 2, n))
            elif a.shape != (nsim, 2, n):
                raise ValueError(f"{key}: shape {a.shape}, expected ({nsim},), ({nsim}, 2), ({nsim}, {n}) "
                                 f"or ({nsim}, 2, {n})")
        elif a.shape == (nsim,):
            a = np.broadcast_to(a[:, None], (nsim, n))
        elif a.shape != (nsim, n):
            raise ValueError(f"{key}: shape {a.shape}, expected ({nsim},) or ({nsim}, {n})")
        if np.any(np.isnan(a)):
            raise ValueError(f"{key}: NaN values")
        out[key] = a
    for key in values:      # the fixed values were checked once, in as_fixed
        try:
            _check_domain(key, out[key])
        except ValueError as exc:
            raise ValueError(f"{key} {exc}") from None
    return out


def lane_table(res: Mapping[str, np.ndarray], sims: np.ndarray, dt: float) -> np.ndarray:
    """The kernel's (N_PAR, N * nb) float64 table for simulations ``sims`` (flat index i * nb + b).

    Derived terms are evaluated as TVB's dfun does (1/tau, Delta/(pi tau), pi**2 tau**2, J tau)."""
    def flat(a):                       # (nb, N) -> (N * nb,), lanes innermost
        return np.ascontiguousarray(np.asarray(a)[sims].T).reshape(-1)

    tau, delta, j = flat(res["model.tau"]), flat(res["model.Delta"]), flat(res["model.J"])
    nsig = np.asarray(res[NSIG])                      # (B, 2, N)
    table = np.empty((N_PAR, tau.size))
    table[P_INV_TAU] = 1 / tau
    table[P_DELTA_PT] = delta / (np.pi * tau)
    table[P_PI2TAU2] = np.pi ** 2 * tau ** 2
    table[P_JTAU] = j * tau
    table[P_ETA] = flat(res["model.eta"])
    table[P_I] = flat(res["model.I"])
    table[P_CR] = flat(res["model.cr"])
    table[P_CV] = flat(res["model.cv"])
    table[P_A] = flat(res["coupling.a"])
    table[P_B] = flat(res["coupling.b"])
    table[P_SIG_R] = np.sqrt(2.0 * flat(nsig[:, 0]) * dt)
    table[P_SIG_V] = np.sqrt(2.0 * flat(nsig[:, 1]) * dt)
    table[P_RATE] = 2.0 * np.abs(table[P_INV_TAU])
    table[P_PITAU] = np.pi * np.abs(tau)
    inv_tau = table[P_INV_TAU]
    table[P_F_DR] = inv_tau * table[P_DELTA_PT]
    table[P_F_2T] = 2.0 * inv_tau
    table[P_F_PP] = inv_tau * table[P_PI2TAU2]
    table[P_F_J] = inv_tau * table[P_JTAU]
    table[P_F_0] = inv_tau * (table[P_ETA] + table[P_I] + (table[P_CR] + table[P_CV]) * table[P_B])
    table[P_F_AR] = inv_tau * table[P_CR] * table[P_A]
    table[P_F_AV] = inv_tau * table[P_CV] * table[P_A]
    return table
