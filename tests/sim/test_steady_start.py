"""BOLD without a start-up artefact: the Balloon model starts at its steady state after a neural warm-up,
the default transient follows from its time constants, and the artefact is detected when it is there."""
from __future__ import annotations

import numpy as np
import pytest

from tvbinv_hpc.sim import Engine, bold
from tvbinv_hpc.stats import fc
from tvbinv_hpc.stats.quality import TREND_THRESHOLD, startup_fraction


@pytest.mark.parametrize("x", [0.0, 0.05, 0.4, 1.8])
def test_steady_state_is_stationary_for_a_constant_input(x):
    """The state set by balloon_steady does not move under a constant input (ds = df = dv = dq = 0)."""
    state = np.zeros((4, 3))
    for k in range(3):
        bold.balloon_steady(state, k, x)
    start = state.copy()
    for _ in range(20000):                           # 20 s in steps of 1 ms
        bold.balloon_step(state, np.full(3, x), 1e-3)
    assert np.abs(state - start).max() < 1e-9
    assert start[1, 0] == pytest.approx(1 + bold.TAU_F * x) and start[0, 0] == 0.0
    # the rest state is the steady state of x = 0 (TVB's start)
    if x == 0.0:
        np.testing.assert_allclose(start[:, 0], [0, 1, 1, 1], atol=1e-15)


def test_auto_transient_follows_the_balloon_time_constants():
    assert bold.SLOWEST_S == pytest.approx(2 * bold.TAU_S) and bold.SETTLE_S == pytest.approx(15.4)


def _quickstart_engine(**bold_cfg):
    from tvbinv_hpc.pipeline import load_config
    cfg = load_config("quickstart")
    cfg["simulation"]["length"] = 14000.0
    cfg["bold"].update(bold_cfg)
    return Engine.from_config(cfg, 1)


def _fc_stats(res, sc):
    iu = np.triu_indices(sc.shape[0], 1)
    mats = [fc(b.astype(np.float64)) for b in res.bold]
    return np.array([m[iu].mean() for m in mats]), np.mean(mats, axis=0)[iu]


def test_short_transient_fc_equals_long_transient_fc():
    """At the quickstart's working point: FC after the automatic 17.4 s transient is statistically that after
    60 s; the TVB start (Balloon at rest) with a 10 s transient is the artefact: FC mean ~0.7, flagged."""
    short, long_ = _quickstart_engine(transient="auto"), _quickstart_engine(transient=60000.0)
    rest = _quickstart_engine(start="rest", transient=10000.0)
    sc = short.connectome.weights
    index = np.arange(6)
    out = {}
    for name, eng in (("short", short), ("long", long_), ("rest", rest)):
        res = eng.simulate({}, index)
        assert (res.status == 1).all()
        out[name] = (*_fc_stats(res, sc), startup_fraction(res.bold, eng.tr_ms))
    m_short, fc_short, f_short = out["short"]
    m_long, fc_long, f_long = out["long"]
    m_rest, _, f_rest = out["rest"]
    print({k: (v[0].round(3), v[2].round(3)) for k, v in out.items()})
    # the same simulations: per-run FC means agree within their sampling spread, mean FC patterns correlate
    spread = np.hypot(m_short.std(ddof=1), m_long.std(ddof=1))
    assert abs(m_short.mean() - m_long.mean()) < 2 * spread / np.sqrt(len(index)) + 0.03
    assert np.corrcoef(fc_short, fc_long)[0, 1] > 0.8
    assert (f_short < TREND_THRESHOLD).all() and (f_long < TREND_THRESHOLD).all()
    assert m_rest.mean() > m_short.mean() + 0.3 and (f_rest > TREND_THRESHOLD).all()


def test_warmup_and_transient_are_checked():
    from tvbinv_hpc.errors import ConfigError
    with pytest.raises(ConfigError, match="bold.transient.*warm-up"):
        _quickstart_engine(warmup=5000.0, transient=3000.0)
    with pytest.raises(ConfigError, match="bold.start"):
        _quickstart_engine(start="cold")
    eng = _quickstart_engine(warmup=0.0, transient=0.0)
    assert eng.hemo_j0 == 0 and eng.warm_n == 1 and eng.n_bold == 140   # the steady state of the first input
