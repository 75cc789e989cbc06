"""BOLD preprocessing: each step does what it says, the same code serves observed and simulated BOLD,
and a series' result never depends on its batch."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from tvbinv_hpc.errors import ConfigError
from tvbinv_hpc.stats import build_features
from tvbinv_hpc.stats.hemispheres import RegionInfo
from tvbinv_hpc.stats.preprocess import Preprocess, build_preprocess

TR = 2000.0


def series(seed=0, t=200, n=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((t, n)).cumsum(axis=0) * 0.1 + rng.standard_normal((t, n))


def test_linear_detrend_removes_a_line():
    t = np.arange(100.0)
    x = np.outer(t, [0.5, -2.0]) + 3.0 + np.sin(t)[:, None]
    out = Preprocess(detrend="linear").apply(x, TR)
    assert abs(np.polyfit(t, out[:, 0], 1)[0]) < 1e-12 and abs(out.mean()) < 1e-12


def test_bandpass_keeps_the_band_and_removes_the_rest():
    fs = 1000 / TR
    t = np.arange(400) / fs
    slow, inside, fast = (np.sin(2 * np.pi * f * t) for f in (0.002, 0.05, 0.2))
    out = Preprocess(bandpass=(0.01, 0.1)).apply(np.c_[slow + inside + fast, inside], TR)
    f, p = welch(out[:, 0], fs=fs, nperseg=200)
    band = (f > 0.03) & (f < 0.07)
    assert p[band].sum() > 20 * p[~((f > 0.01) & (f < 0.1))].sum()
    np.testing.assert_allclose(out[50:-50, 0], out[50:-50, 1], atol=0.1)


def test_gsr_removes_the_global_signal():
    rng = np.random.default_rng(2)
    g = rng.standard_normal(300)
    x = np.outer(g, rng.uniform(0.5, 2.0, 8)) + 0.3 * rng.standard_normal((300, 8))
    out = Preprocess(gsr=True).apply(x, TR)
    gs = x.mean(axis=1) - x.mean()
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-12)           # the global signal is gone
    np.testing.assert_allclose((gs[:, None] * out).sum(axis=0), 0.0, atol=1e-9)   # every region orthogonal to it
    assert np.mean(np.corrcoef(out.T)[np.triu_indices(8, 1)]) < np.mean(np.corrcoef(x.T)[np.triu_indices(8, 1)])


def test_zscore_and_batch_independence():
    batch = np.stack([series(i) for i in range(5)])
    p = Preprocess(detrend="linear", bandpass=(0.01, 0.1), gsr=True, zscore=True)
    whole = p.apply(batch, TR)
    np.testing.assert_allclose(whole.std(axis=1), 1.0)
    for b in range(5):   # the same bits alone as in any batch
        assert np.array_equal(p.apply(batch[b:b + 1], TR)[0], whole[b])
        assert np.array_equal(p.apply(batch[b], TR), whole[b])


def test_features_see_the_same_preprocessing_on_both_paths():
    kw = dict(n_regions=6, tr_ms=TR, burn_in=4000.0, regions=RegionInfo(stated="halves"),
              preprocess={"detrend": "linear", "bandpass": [0.01, 0.1], "gsr": True})
    fs = build_features([{"name": "fc_stats"}, {"name": "homotopic_fc"}], **kw)
    x = series(3)
    assert np.array_equal(fs.compute_empirical(x), fs.compute(x[None].astype(np.float64))[0])
    plain = build_features([{"name": "fc_stats"}, {"name": "homotopic_fc"}], **{**kw, "preprocess": None})
    assert not np.allclose(fs.compute_empirical(x), plain.compute_empirical(x))
    prepared = fs.prepare(x[None])
    assert prepared.shape == (1, 198, 6)   # the burn-in (2 samples) is cut first


@pytest.mark.parametrize("spec,key,match", [
    ({"detrend": "quadratic"}, "detrend", "not one of"),
    ({"bandpass": [0.1, 0.01]}, "bandpass", "low < high"),
    ({"bandpass": [0.01, 0.3]}, "bandpass", "Nyquist"),
    ({"bandpass": [0.01]}, "bandpass", r"\[low, high\]"),
    ({"gsr": "yes"}, "gsr", "true/false"),
])
def test_bad_settings_name_the_key(spec, key, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_preprocess(spec, TR)
    assert e.value.key == key
