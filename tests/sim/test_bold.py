"""Balloon-Windkessel BOLD against TVB's BalloonModel, and the model-time-unit factor."""
from __future__ import annotations

import numpy as np
import pytest

from tests.sim.conftest import FIXED
from tvbinv_hpc.sim import STATUS_OK, Engine
from tvbinv_hpc.sim.bold import balloon_bold


def tvb_balloon(x: np.ndarray, sample_period_ms: float) -> np.ndarray:
    from tvb.analyzers.fmri_balloon import BalloonModel
    from tvb.datatypes.time_series import TimeSeries
    ts = TimeSeries(data=x[:, None, :, None], sample_period=sample_period_ms, sample_period_unit="ms",
                    time=np.arange(x.shape[0]) * sample_period_ms)
    ts.configure()
    return BalloonModel(time_series=ts).evaluate().data[:, 0, :, 0]


@pytest.mark.parametrize("period_ms", [1.0, 0.1, 10.0])
def test_balloon_equals_tvb(period_ms):
    x = np.abs(np.random.default_rng(0).normal(0.5, 0.3, (4000, 6)))
    ref = tvb_balloon(x, period_ms)
    ours = balloon_bold(x, period_ms)
    assert np.abs(ref).max() > 1e-4 and ref[0].tolist() == [0.0] * 6
    assert np.abs(ours - ref).max() <= 1e-6 * np.abs(ref).max()


def _engine(ms_per_unit, tr, transient=0.0, nstep=3000, **kw):
    """TVB's conventions by default: the Balloon at rest at t = 0, delays in steps of dt model units."""
    from tvbinv_hpc.sim.connectome import load_connectome
    conn = load_connectome("connectivity_66", 3.0, "max", False)
    kw = {"bold_start": "rest", "tvb_delays": True, **kw}
    return Engine(conn, dt=0.01, length=nstep * 0.01, fixed={**FIXED, "coupling.a": 0.3}, seed=5,
                  ms_per_unit=ms_per_unit, tavg_period=0.1, bold_tr=tr, bold_transient=transient, **kw)


@pytest.mark.parametrize("ms_per_unit", [1.0, 10.0])
def test_engine_bold_is_tvb_balloon_of_its_tavg(ms_per_unit):
    """Online BOLD = TVB's BalloonModel of the engine's temporal average of r, sampled as y[::m], with the
    Balloon clock at tavg_period * ms_per_unit ms per sample."""
    tr = 10 * 0.1 * ms_per_unit                     # every 10th temporal-average sample
    eng = _engine(ms_per_unit, tr)
    res = eng.simulate({}, np.array([3]), record="tavg")
    assert res.status[0] == STATUS_OK and eng.bold_every == 10
    r = res.tavg[0, :, 0, :]
    ref = tvb_balloon(r, 0.1 * ms_per_unit)[::10]
    assert res.bold.shape == (1, eng.n_bold, 66) == (1, ref.shape[0], 66)
    assert np.abs(res.bold[0] - ref).max() <= 1e-6 * np.abs(ref).max()
    np.testing.assert_allclose(eng.bold_times_ms, np.arange(eng.n_bold) * tr)


def test_time_unit_factor_changes_bold_as_physics_says():
    """Same neural run, ms_per_unit 1 vs 10: identical temporal averages, BOLD of a 10x slower clock. With 10
    the Balloon integrates 10x more physical time per sample, so its response is far larger here."""
    a, b = _engine(1.0, 1.0), _engine(10.0, 10.0)
    ra = a.simulate({}, np.array([0]), record="tavg")
    rb = b.simulate({}, np.array([0]), record="tavg")
    assert np.array_equal(ra.tavg, rb.tavg)
    assert a.bold_dt_s == pytest.approx(1e-4) and b.bold_dt_s == pytest.approx(1e-3)
    assert np.abs(rb.bold).max() > 5 * np.abs(ra.bold).max()
    # and neither equals what a 1000x mistake (a ms step taken as seconds) would give
    wrong = balloon_bold(ra.tavg[0, :, 0, :], 0.1 * 1000)[::10]
    assert not np.allclose(wrong, rb.bold[0], rtol=1e-2)


def test_transient_and_tr():
    eng = _engine(10.0, 10.0, transient=100.0)
    full = _engine(10.0, 10.0)
    assert eng.n_bold == full.n_bold - 10 and eng.bold_times_ms[0] == pytest.approx(100.0)
    a = eng.simulate({}, np.array([2])).bold
    b = full.simulate({}, np.array([2])).bold
    assert np.array_equal(a[0], b[0, 10:])
    from tvbinv_hpc.errors import ConfigError
    with pytest.raises(ConfigError, match="bold.tr"):
        _engine(10.0, 15.5)
