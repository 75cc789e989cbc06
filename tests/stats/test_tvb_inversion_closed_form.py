"""tvb-inversion's five BoldFCDForSBI features on a hand-made BOLD whose answer is known in closed form.

Four regions, left = (0, 1), right = (2, 3).  Eight blocks of L = 3 samples, x0 = (1, -1, 0) in every
block (zero mean, so block-wise sign flips leave the whole-run correlations computable):
  even blocks, pattern A: x1 = -x0, x2 = x0, x3 = -x0
  odd blocks,  pattern C: x1 = +x0, x2 = x0, x3 = -x0
plus one trailing zero sample, so that the windows range(0, T - L, L) with T = 25 are exactly the blocks.

Window FC upper triangles, pairs (01, 02, 03, 12, 13, 23):
  A: (-1, 1, -1, -1, 1, -1)   filtered fc*(fc>0)*inter: (0, 1, 0, 0, 1, 0)
  C: ( 1, 1, -1,  1, -1, -1)  filtered:                  (0, 1, 0, 1, 0, 0)
corr(A, C) = 0 (centred A . C = 0); filtered corr = (3/9) / (12/9) = 1/4.  Hence
FCD[i, j] = 1 if i, j have the same parity else 0; FCD_inter = 1 or 1/4.
triu(., k=3) of the 8 x 8 matrices keeps lags 3..7: 15 entries, 6 at even lags (4: x4, 6: x2), 9 at odd lags.
Whole run: x1 = s*x0 with s = +-1 on equally many blocks -> corr(x1, x0) = 0; x2 = x0, x3 = -x0.
rsFC (negatives, diagonal -> 0) has only r02 = r20 = 1.
"""
import numpy as np
import pytest

from tvbinv_hpc.stats import build_features
from tvbinv_hpc.stats.hemispheres import RegionInfo

HALVES = RegionInfo(stated="halves")   # index halves, as these synthetic regions are laid out

L, W = 3, 8


def hand_made_bold():
    x0 = np.tile([1.0, -1.0, 0.0], W)
    s = np.repeat([-1.0 if k % 2 == 0 else 1.0 for k in range(W)], L)
    bold = np.stack([x0, s * x0, x0, -x0], axis=1)
    return np.vstack([bold, np.zeros((1, 4))])  # T = 25


def expected():
    homo = (1.0 + 0.0) / 2  # mean(rsFC[0, 2], rsFC[1, 3])
    stack_std = np.sqrt(1 / 3 - 1 / 9)  # every filtered row has two 1s among six entries
    var_fcd = 6 / 64 - (6 / 64) ** 2
    mean_i, sq_i = (6 + 9 * 0.25) / 64, (6 + 9 * 0.0625) / 64
    var_fcd_inter = sq_i - mean_i**2
    fc_sum = 2.0
    fcd_sum = 2 * 6.0
    return [homo, stack_std, var_fcd_inter - var_fcd, fc_sum, fcd_sum]


@pytest.mark.parametrize("hemispheres", ["halves", {"left": [0, 1], "right": [2, 3]}])
def test_five_features_closed_form(hemispheres):
    fs = build_features([{"name": "bold_fcd_for_sbi", "win_len": L, "win_sp": L,
                          "hemispheres": hemispheres}], regions=HALVES, n_regions=4, tr_ms=2000.0)
    assert fs.names == ["HOMO_FC", "FCD_STACK_STD_INTER_TENS", "FCD_SUBJ_DIFF_VAR_OV_TENS", "FC_SUM",
                        "FCD_SUM"]
    bold = hand_made_bold()
    assert fs.min_samples <= bold.shape[0]
    np.testing.assert_allclose(fs.compute_empirical(bold), expected(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fs.compute(bold[None])[0], expected(), rtol=1e-10, atol=1e-12)


def test_perfectly_correlated_hemispheres_give_homo_fc_one():
    rng = np.random.default_rng(0)
    left = rng.standard_normal((60, 5))
    bold = np.hstack([left, 2.0 * left + 1.0])
    fs = build_features([{"name": "bold_fcd_for_sbi", "win_len": 5}, {"name": "homotopic_fc"}],
                        regions=HALVES, n_regions=10, tr_ms=1000.0)
    x = dict(zip(fs.names, fs.compute_empirical(bold)))
    assert x["HOMO_FC"] == pytest.approx(1.0, abs=1e-12)
    assert x["homotopic_fc_mean"] == pytest.approx(1.0, abs=1e-12)


def test_hemisphere_order_is_a_parameter():
    """Right hemisphere stored in reverse order: explicit lists recover the 'halves' answer."""
    rng = np.random.default_rng(1)
    left = rng.standard_normal((60, 5))
    ordered = np.hstack([left, left + 0.3 * rng.standard_normal((60, 5))])
    perm = [0, 1, 2, 3, 4, 9, 8, 7, 6, 5]
    shuffled = ordered[:, perm]
    spec = {"name": "bold_fcd_for_sbi", "win_len": 5}
    ref = build_features([spec], regions=HALVES, n_regions=10, tr_ms=1000.0).compute_empirical(ordered)
    explicit = build_features([dict(spec, hemispheres={"left": [0, 1, 2, 3, 4], "right": [9, 8, 7, 6, 5]})],
                              regions=HALVES, n_regions=10, tr_ms=1000.0).compute_empirical(shuffled)
    np.testing.assert_allclose(explicit, ref, rtol=1e-12, atol=1e-14)
    naive = build_features([spec], regions=HALVES, n_regions=10, tr_ms=1000.0).compute_empirical(shuffled)
    assert naive[0] < ref[0] - 0.3  # 'halves' on the reversed order pairs the wrong regions
