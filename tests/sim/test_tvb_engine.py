"""TVBEngine (TVB's own simulator behind the Engine interface): rows from (seed, index) only, divergence,
the numba engine's time grid, and which templates go to which engine."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tvbinv_hpc.errors import TvbinvError
from tvbinv_hpc.sim.mpr import STATUS_DIVERGED, STATUS_OK

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_compat import template as mpr_template  # noqa: E402
from test_compat_tvb import template as rww_template  # noqa: E402


def g2d_template():
    """Generic2dOscillator, deterministic Heun, 4 regions, 300 ms."""
    from tvb.simulator.lab import integrators, models

    sim = rww_template(n=4, length=300.0)
    sim.model = models.Generic2dOscillator()
    sim.integrator = integrators.HeunDeterministic(dt=0.5)
    return sim


def test_deterministic_rows_depend_on_seed_and_index_only_and_divergence_is_flagged():
    from tvbinv_hpc.sim.tvb_engine import TVBEngine

    e = TVBEngine(g2d_template(), seed=1, ms_per_unit=1.0, bold_tr=50.0)
    assert (e.voi_name, e.n_bold, e.tr_ms, e.threads, e.rows_per_batch(5)) == ("V", 6, 50.0, 1, 5)
    np.testing.assert_allclose(e.bold_times_ms, 50.0 * np.arange(6))
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    res = e.simulate({"coupling.a": np.r_[0.0, 0.1, 1e6]}, np.r_[0, 1, 2])
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002 - the caller's RNG is left alone
    assert list(res.status) == [STATUS_OK, STATUS_OK, STATUS_DIVERGED]
    assert np.isnan(res.bold[2]).all() and np.isfinite(res.bold[:2]).all() and res.steps[2] < res.steps[0]
    again = e.simulate({"coupling.a": np.r_[0.1]}, np.r_[1])
    assert again.bold.tobytes() == res.bold[1:2].tobytes()
    other = e.simulate({"coupling.a": np.r_[0.1]}, np.r_[7])  # another index: another random history
    assert not np.array_equal(other.bold, again.bold)


def test_stochastic_rows_take_noise_and_history_from_seed_and_index():
    from tvbinv_hpc.sim.tvb_engine import TVBEngine, row_seed

    sim = rww_template(n=4, length=300.0)
    e = TVBEngine(sim, seed=3, ms_per_unit=1.0, bold_tr=50.0)
    a = e.simulate({"model.w": np.r_[0.6, 0.6, 0.6]}, np.r_[4, 5, 4])
    assert a.bold[0].tobytes() == a.bold[2].tobytes() and not np.array_equal(a.bold[0], a.bold[1])
    assert e.configured({}, 5).integrator.noise.noise_seed == row_seed(3, 5)
    assert sim.integrator.noise.noise_seed == 42   # the template is never touched
    b = TVBEngine(sim, seed=4, ms_per_unit=1.0, bold_tr=50.0).simulate({}, np.r_[4])
    assert not np.array_equal(b.bold[0], a.bold[0])
    with pytest.raises(ValueError, match="not an attribute"):
        e.simulate({"model.eta": np.r_[1.0]}, np.r_[0])


def test_templates_go_to_the_engine_that_can_simulate_them(tmp_path):
    from tvb.simulator.lab import monitors

    from tvbinv_hpc import BoldFCDForSBI, PytorchPrior, run_local, sbiModel
    from tvbinv_hpc.compat.run import describe_simulator, make_engine
    from tvbinv_hpc.sim import Engine
    from tvbinv_hpc.sim.tvb_engine import TVBEngine

    kw = dict(ms_per_unit=10.0, tavg_period=None, bold_tr=100.0, bold_transient=0.0)
    uniform = torch.distributions.Uniform(0.1, 0.3)
    mpr = sbiModel(mpr_template(), PytorchPrior(["coupling.a"], uniform)).generate_sim_seq(2)
    engine, why = make_engine(mpr, **kw)
    assert isinstance(engine, Engine) and why == ""
    gamma = sbiModel(mpr_template(), PytorchPrior(["model.Gamma"], uniform)).generate_sim_seq(2)
    engine, why = make_engine(gamma, **kw)   # a parameter the numba engine does not read
    assert isinstance(engine, TVBEngine) and "model.Gamma" in why and engine.voi_name == "r"
    rww = sbiModel(rww_template(), PytorchPrior(["coupling.a"], uniform)).generate_sim_seq(2)
    engine, why = make_engine(rww, **{**kw, "ms_per_unit": 1.0, "bold_tr": 50.0})
    assert isinstance(engine, TVBEngine) and "ReducedWongWang" in why
    with pytest.raises(TvbinvError, match="bold_tr: 55.0 ms is not a multiple"):   # bad settings stay named
        run_local(rww, [BoldFCDForSBI(win_len=5)], filename=tmp_path / "never.h5", ms_per_unit=1.0, bold_tr=55.0)
    bold = mpr_template()
    bold.monitors = [monitors.Bold()]   # refused by both engines: BOLD comes from the Balloon model
    with pytest.raises(TvbinvError, match="'monitors'.*Bold"):
        make_engine(sbiModel(bold, PytorchPrior(["coupling.a"], uniform)).generate_sim_seq(2), **kw)
    # the numba engine's store view is the one older stores were made with (so they still resume)
    assert list(describe_simulator(mpr.template)) == [
        "model", "model.tau", "model.I", "model.Delta", "model.J", "model.eta", "model.cr", "model.cv",
        "coupling", "coupling.a", "coupling.b", "integrator", "integrator.dt", "integrator.noise",
        "integrator.noise.nsig", "simulation_length", "connectivity.weights", "connectivity.tract_lengths",
        "connectivity.speed", "n_regions", "monitors", "initial_conditions"]
    assert "model.Gamma" in describe_simulator(mpr.template, "tvb")
