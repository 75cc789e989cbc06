"""The start-up artefact check on synthetic BOLD."""
from __future__ import annotations

import numpy as np

from tvbinv_hpc.stats.quality import TREND_THRESHOLD, dominated_by_startup, startup_fraction


def _noise(t=120, n=20, seed=0):
    return np.random.default_rng(seed).normal(size=(t, n))


def test_fluctuations_are_clean_and_a_shared_relaxation_is_flagged():
    tr_ms = 1000.0
    t = np.arange(120) * tr_ms / 1000.0
    clean = _noise()
    artefact = clean + 6.0 * np.exp(-t / 3.0)[:, None]                   # every region relaxes from the start
    f = startup_fraction(np.stack([clean, artefact]), tr_ms)
    assert f[0] < 0.1 and f[1] > TREND_THRESHOLD + 0.1
    assert dominated_by_startup(np.stack([clean, artefact]), tr_ms).tolist() == [False, True]
    assert startup_fraction(artefact, tr_ms) == f[1]                       # (T, N) works too


def test_one_region_switching_or_a_mid_run_event_is_not_an_artefact():
    tr_ms = 720.0
    y = _noise(seed=1)
    y[:10, 3] += 40.0                                                      # one region, huge, early
    late = _noise(seed=2)
    late[50:70] += 3.0                                                     # all regions, in the middle
    assert startup_fraction(y, tr_ms) < TREND_THRESHOLD
    assert startup_fraction(late, tr_ms) < TREND_THRESHOLD


def test_not_finite_or_constant_is_nan():
    y = _noise()
    y[5, 2] = np.nan
    z = _noise()
    z[:, 0] = 1.0
    assert np.isnan(startup_fraction(np.stack([y, z]), 1000.0)).all()
