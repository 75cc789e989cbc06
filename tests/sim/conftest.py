"""Helpers for the simulator tests: TVB simulators built the way the engine reads them."""
from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import pytest

# Import TVB's lab at collection: its logger set-up walks every TVB logger's handler, and fails on handlers
# created while pytest captured stdout (AttributeError: '_io.StringIO' object has no attribute 'name').
import tvb.simulator.lab  # noqa: F401,E402

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

FIXED = {"model.tau": 1.0, "model.I": 0.0, "model.Delta": 0.7, "model.J": 14.5, "model.eta": -4.6,
         "model.cr": 1.0, "model.cv": 0.0, "coupling.a": 0.5, "coupling.b": 0.0,
         "integrator.noise.nsig": [0.035, 0.07]}


def tvb_sim(conn_name="connectivity_76", *, dt=0.01, nstep=2000, speed=3.0, a=0.5, b=0.0, nsig=0.0,
            cv=0.0, eta=-4.6, normalize=True, monitors=None, noise_seed=42, initial_conditions=None,
            configure=True, **model_kw):
    """A TVB Simulator of MPR + Linear + HeunStochastic/Additive (nsig 0: deterministic)."""
    warnings.filterwarnings("ignore")
    logging.getLogger("tvb").setLevel(logging.ERROR)
    import tvb.simulator.lab as lab
    conn = lab.connectivity.Connectivity.from_file(conn_name + ".zip")
    if normalize:
        conn.weights = conn.weights / np.abs(conn.weights).max()
    conn.speed = np.r_[speed]
    model = lab.models.MontbrioPazoRoxin(eta=np.atleast_1d(np.asarray(eta, float)), J=np.r_[14.5],
                                         Delta=np.r_[0.7], tau=np.r_[1.0], cr=np.r_[1.0], cv=np.r_[cv],
                                         **model_kw)
    sim = lab.simulator.Simulator(
        connectivity=conn, model=model, coupling=lab.coupling.Linear(a=np.r_[a], b=np.r_[b]),
        integrator=lab.integrators.HeunStochastic(
            dt=dt, noise=lab.noise.Additive(nsig=np.atleast_1d(np.asarray(nsig, float)), noise_seed=noise_seed)),
        monitors=monitors if monitors is not None else [lab.monitors.Raw()], simulation_length=nstep * dt)
    if initial_conditions is not None:
        sim.initial_conditions = initial_conditions
    return sim.configure() if configure else sim


def float32_history(horizon: int, n: int, seed: int = 1) -> np.ndarray:
    """A random initial history (horizon, 2, N, 1) in the state ranges, exactly representable in float32
    (TVB keeps float64 for the current state but float32 in its ring: this makes both the same)."""
    rs = np.random.default_rng(seed)
    ic = np.empty((horizon, 2, n, 1))
    ic[:, 0] = rs.uniform(0, 2, (horizon, n, 1))
    ic[:, 1] = rs.uniform(-2, 1.5, (horizon, n, 1))
    return ic.astype(np.float32).astype(np.float64)


@pytest.fixture(scope="session")
def conn76():
    from tvbinv_hpc.sim.connectome import load_connectome
    return load_connectome("connectivity_76", 3.0, "max", False)
