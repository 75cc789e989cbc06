"""The built-in example sits at a realistic resting-state working point (checked on a few simulations; the
full numbers of `make demo` are in the README)."""
from __future__ import annotations

import numpy as np
import pytest

from tvbinv_hpc.stats import fc


@pytest.fixture(scope="module")
def quickstart():
    from tvbinv_hpc.pipeline import build_setup, load_config, synthetic_theta
    s = build_setup(load_config("quickstart"))
    return s, synthetic_theta(s)


def _fc_numbers(bold, sc):
    iu = np.triu_indices(sc.shape[0], 1)
    out = []
    for b in bold:
        m = fc(b.astype(np.float64))[iu]
        out.append((m.mean(), np.corrcoef(m, sc[iu])[0, 1]))
    return np.array(out)


def test_truth_gives_resting_state_fc(quickstart):
    """FC off-diagonal mean 0.15-0.45 and r(FC, SC) >= 0.4 for the synthetic truth (4 noise realisations)."""
    s, theta = quickstart
    assert s.engine.physiology_warnings() == []
    res = s.engine.simulate(s.prior.values(np.repeat(theta[None], 4, 0)), np.arange(10**6, 10**6 + 4))
    assert (res.status == 1).all()
    nums = _fc_numbers(res.bold, s.engine.connectome.weights)
    print("FC mean, r(FC, SC):", nums.round(3))
    assert 0.15 <= nums[:, 0].mean() <= 0.45 and nums[:, 1].mean() >= 0.4


def test_prior_box_does_not_diverge(quickstart):
    s, _ = quickstart
    theta = s.prior.sample(np.arange(8), s.seed)
    res = s.engine.simulate(s.prior.values(theta), np.arange(8))
    assert (res.status == 1).all()
