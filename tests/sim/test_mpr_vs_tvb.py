"""Deterministic trajectories (nsig = 0, same initial history) against TVB's reference Simulator.run()."""
from __future__ import annotations

import numpy as np
import pytest

from tests.sim.conftest import float32_history, tvb_sim
from tvbinv_hpc.sim import STATUS_OK, Engine

NSTEP = 2000


def _reference(conn_name, **kw):
    sim = tvb_sim(conn_name, nstep=NSTEP, **kw)
    n = sim.connectivity.weights.shape[0]
    sim.initial_conditions = float32_history(sim.connectivity.horizon, n)
    sim.configure()
    engines = {hd: Engine.from_tvb(sim, seed=0, history_dtype=hd) for hd in (np.float64, np.float32)}
    engines["tvb_order"] = Engine.from_tvb(sim, seed=0, tvb_order=True)
    (_, data), = sim.run()
    return sim, data[:, :, :, 0], engines


CASES = {
    # cr and cv both non-zero, b non-zero, TVB's full connectivity_76 (66 self-connections of length 0)
    "c76_cr_cv": ("connectivity_76", dict(a=0.5, b=0.05, cv=0.3)),
    # another connectome, one eta per region
    "c66_eta_per_region": ("connectivity_66", dict(a=0.6, eta=np.linspace(-5.0, -4.0, 66))),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    name, kw = CASES[request.param]
    return _reference(name, **kw)


def test_setup_is_what_we_test(case):
    sim, ref, engines = case
    w = sim.connectivity.weights
    eng = engines[np.float64]
    assert eng.horizon > 100 and eng.topology.block > 1          # real delays, time-blocked path
    assert np.count_nonzero(np.diag(w)) > 0 or np.ptp(sim.model.eta) > 0
    assert ref.shape == (NSTEP, 2, w.shape[0]) and np.all(np.isfinite(ref))
    assert np.ptp(ref[:, 0]) > 0.1                               # dynamics, not a fixed point


@pytest.mark.parametrize("history", [np.float64, np.float32], ids=["float64", "float32"])
def test_trajectory_matches_tvb(case, history):
    """Fast kernel (time-blocked coupling), float64 or float32 history: within 1e-4 of TVB over 2000 steps
    (measured ~1e-6 / 1e-5 on r / V; TVB's own float32 sums differ from exact ones by 1e-7 relative)."""
    sim, ref, engines = case
    res = engines[history].simulate({}, np.array([0]), record="raw")
    assert res.status[0] == STATUS_OK
    ours = res.raw[0]
    err_r = np.abs(ours[:, 0] - ref[:, 0]).max()
    err_v = np.abs(ours[:, 1] - ref[:, 1]).max()
    print(f"{history.__name__} history: max|dr| {err_r:.2e} max|dV| {err_v:.2e}")
    assert err_r <= 1e-4 and err_v <= 1e-4
    # the first steps agree to rounding
    assert np.abs(ours[:10] - ref[:10]).max() < 1e-6


def test_tvb_order_mode_is_bit_identical_to_tvb(case):
    """Validation mode: TVB's float32 ring, float32 weights and numpy's pairwise row sums: every one of the
    2000 x 2 x N values equals TVB's Simulator.run() bit for bit (delays, self-connections, both coupling
    variables, per-region eta, Heun, clamping)."""
    sim, ref, engines = case
    eng = engines["tvb_order"]
    assert eng.topology.block == 1 and eng.topology.loc_src.size == 0
    res = eng.simulate({}, np.array([0]), record="raw")
    assert np.array_equal(res.raw[0], ref)


def test_values_override_equals_simulator_setting(case):
    """Giving the Simulator's own values per simulation changes nothing (bit for bit)."""
    sim, _, engines = case
    eng = engines[np.float64]
    n = eng.n_regions
    eta = np.asarray(sim.model.eta, float).reshape(-1)
    values = {"model.eta": eta[None] if eta.size == n else eta[:1],
              "coupling.a": np.asarray(sim.coupling.a, float).reshape(-1)[:1],
              "model.cv": np.full((1, n), float(np.ravel(sim.model.cv)[0]))}
    a = eng.simulate({}, np.array([0]), nstep=300, record="raw").raw
    b = eng.simulate(values, np.array([0]), nstep=300, record="raw").raw
    assert np.array_equal(a, b)


def test_tavg_is_tvb_temporal_average(case):
    """Temporal average: means of consecutive blocks of istep steps of TVB's own trajectory, at TVB's
    TemporalAverage times (k + 0.5) * period."""
    import tvb.simulator.lab as lab
    sim, ref, engines = case
    eng = Engine.from_tvb(sim, seed=0, tavg_period=0.1, history_dtype=np.float64)
    res = eng.simulate({}, np.array([0]), record="tavg")
    assert eng.istep == 10 and res.tavg.shape[1] == NSTEP // 10
    expected = ref.reshape(NSTEP // 10, 10, 2, -1).mean(axis=1)
    assert np.abs(res.tavg[0] - expected).max() < 1e-4
    plain = tvb_sim("connectivity_76", nstep=100, monitors=[lab.monitors.TemporalAverage(period=0.1)])
    (t, _), = plain.run()
    np.testing.assert_allclose(Engine.from_tvb(plain, seed=0).tavg_times, t, rtol=1e-12)
