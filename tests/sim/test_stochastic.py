"""Stochastic runs: same distribution of summary statistics as TVB's reference Simulator.run() and as
NbMPRBackend(compatibility_mode=True), over 24 noise realisations from one fixed initial history (so the
spread is the noise's alone, and a wrong noise amplitude is detected)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tests.sim.conftest import float32_history, tvb_sim
from tvbinv_hpc.sim import STATUS_OK, Engine
from tvbinv_hpc.sim.setup import history_from_tvb

NSEED, NSTEP, NSIG, CONN = 24, 600, [0.02, 0.04], "connectivity_66"


def _sim(noise_seed, ring):
    sim = tvb_sim(CONN, nstep=NSTEP, a=0.5, nsig=NSIG, noise_seed=noise_seed)
    sim.history.buffer[:] = ring.astype(np.float32)           # TVB ring order: slot 0 = current state
    sim.current_state = ring[0].astype(np.float64)
    return sim


def summaries(traj: np.ndarray) -> np.ndarray:
    """Per run: time-averaged r (all regions), mean FC of r, mean V, r of region 0 at the end."""
    r = traj[:, NSTEP // 2:, 0]                                # (runs, T, N)
    fc = np.array([np.corrcoef(x.T)[np.triu_indices(x.shape[1], 1)].mean() for x in r])
    return np.column_stack([r.mean(axis=(1, 2)), fc, traj[:, NSTEP // 2:, 1].mean(axis=(1, 2)),
                            traj[:, -1, 0, 0]])


@pytest.fixture(scope="module")
def ring():
    sim = tvb_sim(CONN, nstep=NSTEP)
    return float32_history(sim.connectivity.horizon, sim.connectivity.weights.shape[0], seed=4)[..., :]


@pytest.fixture(scope="module")
def ours(ring):
    sim = _sim(0, ring)
    eng = Engine.from_tvb(sim, seed=123, initial_history=history_from_tvb(sim))
    res = eng.simulate({}, np.arange(NSEED), record="raw")
    assert np.all(res.status == STATUS_OK)
    loud = eng.simulate({"integrator.noise.nsig": np.tile(np.array(NSIG) * 4, (NSEED, 1))}, np.arange(NSEED),
                        record="raw")
    return summaries(res.raw), summaries(loud.raw)


@pytest.fixture(scope="module")
def reference(ring):
    runs = []
    for seed in range(NSEED):
        (_, data), = _sim(seed, ring).run()
        runs.append(data[:, :, :, 0])
    return summaries(np.array(runs))


def _same_distribution(a: np.ndarray, b: np.ndarray, alpha: float = 0.01) -> list[str]:
    """Failures of a two-sample KS test and of a mean comparison (4 standard errors) per statistic."""
    bad = []
    names = ["mean r", "mean FC", "mean V", "final r[0]"]
    for k, name in enumerate(names):
        p = stats.ks_2samp(a[:, k], b[:, k]).pvalue
        se = np.sqrt(a[:, k].var(ddof=1) / len(a) + b[:, k].var(ddof=1) / len(b))
        if p < alpha or abs(a[:, k].mean() - b[:, k].mean()) > 4 * se:
            bad.append(f"{name}: KS p={p:.3g}, means {a[:, k].mean():.5g} vs {b[:, k].mean():.5g} (se {se:.2g})")
    return bad


@pytest.mark.slow
def test_matches_tvb_reference(ours, reference):
    good, _ = ours
    assert np.all(good.std(axis=0) > 0)                        # the noise does spread the runs
    assert _same_distribution(good, reference) == []


@pytest.mark.slow
def test_wrong_noise_amplitude_is_detected(ours, reference):
    """The comparison has power: 4x the noise is rejected."""
    _, loud = ours
    assert _same_distribution(loud, reference) != []


@pytest.mark.slow
def test_matches_nbmpr_backend(ours, ring):
    from tvb.simulator.backend.nb_mpr import NbMPRBackend
    runs = []
    for seed in range(NSEED):
        (_, data), = NbMPRBackend().run_sim(_sim(seed, ring), nstep=NSTEP, compatibility_mode=True)
        runs.append(data[:, :, :, 0])
    assert _same_distribution(ours[0], summaries(np.array(runs))) == []
