"""The adaptive scheme: bounded where TVB's explicit Heun step blows up, TVB's step where TVB is fine."""
from __future__ import annotations

import numpy as np
import pytest

from tests.sim.conftest import FIXED
from tvbinv_hpc.sim import Engine


@pytest.fixture(scope="module")
def seed_engines():
    """The seed's settings: raw connectivity_76 weights, nsig [0.035, 0.07], tvb-inversion's MPR."""
    from tvbinv_hpc.sim.connectome import load_connectome
    conn = load_connectome("connectivity_76", 3.0, "none", False)
    kw = dict(dt=0.01, length=300.0, fixed={**FIXED, "integrator.noise.nsig": [0.035, 0.07]}, seed=3,
              ms_per_unit=10.0, tavg_period=0.1, bold_tr=100.0)
    return {s: Engine(conn, scheme=s, **kw) for s in ("fixed", "adaptive")}


def test_seed_settings_stay_bounded(seed_engines):
    """64 draws of a ~ U(0.1, 1.2) (30000 steps each; the long variant is `tvbinv-hpc bench --stability`):
    the fixed step diverges in most, the adaptive scheme in < 5 %."""
    a = np.random.default_rng(0).uniform(0.1, 1.2, 64)
    res = {s: e.simulate({"coupling.a": a}, np.arange(64)) for s, e in seed_engines.items()}
    div = {s: float(np.mean(r.status != 1)) for s, r in res.items()}
    print("diverged fraction", div)
    assert div["fixed"] > 0.5 and div["adaptive"] < 0.05
    ok = res["adaptive"].status == 1
    assert np.all(np.isfinite(res["adaptive"].bold[ok])) and res["adaptive"].substeps.sum() > 0


def test_adaptive_is_tvb_step_where_tvb_is_well_behaved():
    """At a resting-state working point (started from it: the random start-up transient can reach the
    threshold) no node needs sub-steps: adaptive == fixed bit for bit."""
    from tvbinv_hpc.sim.connectome import load_connectome
    conn = load_connectome("connectivity_76", 3.0, "max", False)
    kw = dict(dt=0.01, fixed={**FIXED, "integrator.noise.nsig": 0.004, "model.eta": -4.8}, seed=5,
              ms_per_unit=10.0, tavg_period=0.1, bold_tr=10.0)
    warm = Engine(conn, length=300.0, **kw).simulate({}, np.arange(1), record="raw").raw[0, -1]   # (2, N)
    a = Engine(conn, scheme="adaptive", length=300.0, initial_history=warm, **kw)
    b = Engine(conn, scheme="fixed", length=300.0, initial_history=warm, **kw)
    ra, rb = a.simulate({}, np.arange(4), record="tavg"), b.simulate({}, np.arange(4), record="tavg")
    assert ra.substeps.sum() == 0 and np.array_equal(ra.tavg, rb.tavg) and np.array_equal(ra.bold, rb.bold)


def test_substeps_resolve_a_runaway():
    """One node started in the runaway (r = 0, V = 40): the fixed step overflows, the sub-stepped flow
    turns V around (r catches up through exp(2 int V)) and stays finite."""
    from tvbinv_hpc.sim.connectome import Connectome
    conn = Connectome(np.zeros((2, 2)), np.zeros((2, 2)), ["a", "b"], speed=3.0)
    hist = np.array([[0.0, 0.1], [40.0, -2.0]])                          # (2 vars, 2 nodes)
    kw = dict(dt=0.01, length=5.0, fixed={**FIXED, "integrator.noise.nsig": 0.0}, seed=0, ms_per_unit=10.0,
              tavg_period=0.1, bold_tr=10.0, initial_history=hist, bold_warmup=0.0)
    fixed = Engine(conn, scheme="fixed", **kw).simulate({}, np.arange(1), record="raw")
    adaptive = Engine(conn, scheme="adaptive", **kw).simulate({}, np.arange(1), record="raw")
    assert fixed.status[0] == 2
    raw = adaptive.raw[0]
    assert adaptive.status[0] == 1 and np.all(np.isfinite(raw)) and raw[:, 1, 0].min() < 0 < raw[:, 0, 0].max()
    assert abs(raw[-1, 1, 0]) < 5.0 and adaptive.substeps[0] > 0             # back near the working point
