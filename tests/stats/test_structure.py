"""Structure-function features (fc_structure, fc_contrast): definitions, invariance to FC -> a FC + b, the
same numbers as the report's structural baselines, and set-up errors."""
import numpy as np
import pytest
from stats_reference import random_bold

from tvbinv_hpc.errors import ConfigError
from tvbinv_hpc.inference.diagnostics import sc_baselines
from tvbinv_hpc.stats import build_features
from tvbinv_hpc.stats.features import Batch
from tvbinv_hpc.stats.hemispheres import RegionInfo
from tvbinv_hpc.stats.structure import Structure, triu_corr_rows

N = 8


def connectome(n=N, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 40, size=(n, n)).astype(float)   # streamline counts, not symmetric
    np.fill_diagonal(counts, 0)
    lengths = np.where(counts > 0, rng.uniform(10, 150, size=(n, n)), 0.0)
    return counts, lengths


def build(specs, sc=None, lengths=None, stated="halves"):
    return build_features(specs, n_regions=N, tr_ms=2000.0,
                          regions=RegionInfo(stated=stated, sc=sc, lengths=lengths))


def test_structure_vectors():
    counts, lengths = connectome()
    s = Structure(counts / counts.max(), lengths)     # max-normalised counts: log1p of the counts again
    iu = np.triu_indices(N, 1)
    sym = (counts + counts.T) / 2
    np.testing.assert_allclose(s.sc * counts.max(), sym[iu])
    np.testing.assert_allclose(s.log_sc, np.log1p(sym[iu] / counts[counts > 0].min()))
    assert (s.has_length == (((lengths + lengths.T) / 2)[iu] > 0)).all()


def test_triu_corr_rows_is_pearson_row_by_row():
    rng = np.random.default_rng(1)
    v, t = rng.normal(size=(3, 20)), rng.normal(size=20)
    v[2, 4] = np.nan
    r = triu_corr_rows(v, t)
    for b in range(2):
        assert r[b] == pytest.approx(np.corrcoef(v[b], t)[0, 1], rel=1e-12)
    assert np.isnan(r[2])
    mask = rng.random(20) > 0.3
    assert triu_corr_rows(v[:1], t, mask)[0] == pytest.approx(np.corrcoef(v[0, mask], t[mask])[0, 1])


def test_fc_structure_matches_definitions_and_the_report_baselines():
    counts, lengths = connectome()
    fs = build([{"name": "fc_structure"}], sc=counts, lengths=lengths)
    assert fs.names == ["fc_r_sc", "fc_r_logsc", "fc_r_length"]
    bold = random_bold(2, 60, N)
    x = fs.compute(bold)
    fc = np.corrcoef(bold[1].T)
    base = sc_baselines(fc, counts)    # the report's baselines use the same definition
    assert x[1, 0] == pytest.approx(base["r_fc_sc"], rel=1e-10)
    assert x[1, 1] == pytest.approx(base["r_fc_logsc"], rel=1e-10)
    iu = np.triu_indices(N, 1)
    ln = ((lengths + lengths.T) / 2)[iu]
    assert x[1, 2] == pytest.approx(np.corrcoef(fc[iu][ln > 0], ln[ln > 0])[0, 1], rel=1e-10)


def _with_fc(fc):
    batch = Batch(np.zeros((fc.shape[0], 10, N)))
    batch._cache[("fc",)] = fc
    return batch


def test_pattern_features_ignore_a_shared_signal():
    counts, lengths = connectome()
    fs = build([{"name": "fc_structure"}, {"name": "fc_contrast"}], sc=counts, lengths=lengths)
    fc = np.array([np.corrcoef(b.T) for b in random_bold(2, 60, N)])
    moved = 0.4 * fc + 0.6     # a signal shared by all regions with equal variances: FC -> a FC + (1 - a)
    for f in fs.features:
        np.testing.assert_allclose(f.compute(_with_fc(moved)), f.compute(_with_fc(fc)), rtol=1e-9, atol=1e-12)


def test_fc_contrast_by_hand():
    fs = build([{"name": "fc_contrast"}], stated="halves")
    assert fs.names == ["fc_homotopic_z", "fc_hemisphere_z", "fc_spread"]
    fc = np.array([np.corrcoef(random_bold(1, 60, N)[0].T)])
    iu = np.triu_indices(N, 1)
    mu, sd = fc[0][iu].mean(), fc[0][iu].std()
    left, right = np.arange(4), np.arange(4, 8)
    homo = fc[0, left, right].mean()
    within = np.concatenate([fc[0][np.ix_(left, left)][np.triu_indices(4, 1)],
                             fc[0][np.ix_(right, right)][np.triu_indices(4, 1)]]).mean()
    between = fc[0][np.ix_(left, right)].mean()
    x = fs.features[0].compute(_with_fc(fc))
    np.testing.assert_allclose(x[0], [(homo - mu) / sd, (within - between) / sd, sd / (1 - mu)], rtol=1e-10)


def test_set_up_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"features\[0\]\.stats.*structural connectivity"):
        build([{"name": "fc_structure"}])
    counts, _ = connectome()
    with pytest.raises(ConfigError, match=r"features\[0\]\.stats.*tract lengths"):
        build([{"name": "fc_structure"}], sc=counts)
    fs = build([{"name": "fc_structure", "stats": ["r_sc", "r_logsc"]}], sc=counts)   # no lengths needed
    assert fs.names == ["fc_r_sc", "fc_r_logsc"]
    with pytest.raises(ConfigError, match=r"features\[0\]\.stats"):
        build([{"name": "fc_contrast", "stats": ["nope"]}])
