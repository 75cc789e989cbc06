import numpy as np
import pytest
from stats_reference import random_bold, ref_fcd, simulated_like_bold

from tvbinv_hpc.stats import fc, fcd, fcd_filtered, window_starts

RTOL, ATOL = 1e-10, 1e-12


@pytest.mark.parametrize("make", [random_bold, simulated_like_bold])
def test_fc_matches_corrcoef(make):
    bold = make(3, 80, 12)
    got = fc(bold)
    assert got.shape == (3, 12, 12)
    for b in range(3):
        np.testing.assert_allclose(got[b], np.corrcoef(bold[b].T), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(fc(bold[1]), np.corrcoef(bold[1].T), rtol=RTOL, atol=ATOL)


def test_fc_float32_and_constant_region():
    bold = random_bold(2, 50, 6)
    bold[1, :, 2] = 4.0
    got = fc(bold.astype(np.float32))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got[0], np.corrcoef(bold[0].astype(np.float32).T), rtol=1e-10, atol=1e-12)
    assert np.isnan(got[1, 2]).all() and np.isnan(got[1, :, 2]).all()
    assert np.isfinite(np.delete(np.delete(got[1], 2, 0), 2, 1)).all()


def test_window_starts():
    assert window_starts(10, 4, 2).tolist() == [0, 2, 4, 6]
    assert window_starts(10, 4, 2, include_last=False).tolist() == list(range(0, 10 - 4, 2))
    assert window_starts(10, 4, 1, include_last=False).tolist() == list(range(0, 6))
    with pytest.raises(ValueError):
        window_starts(10, 1, 1)


@pytest.mark.parametrize("make,L,sp,last", [(random_bold, 8, 1, True), (random_bold, 7, 3, False),
                                            (simulated_like_bold, 20, 1, False)])
def test_fcd_matches_loops(make, L, sp, last):
    N = 76 if make is simulated_like_bold else 9
    bold = make(2, 150 if N == 76 else 60, N)
    got = fcd(bold, L, sp, include_last=last)
    for b in range(2):
        ref, _ = ref_fcd(bold[b], L, sp, last)
        assert got[b].shape == ref.shape
        np.testing.assert_allclose(got[b], ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(fcd(bold[0], L, sp, include_last=last), got[0], rtol=0, atol=0)


def test_fcd_filtered_matches_loops():
    bold = simulated_like_bold(2, 70, 10)
    rng = np.random.default_rng(3)
    mask = rng.uniform(size=(10, 10)) < 0.5
    mask = mask | mask.T
    F, Fi, sd = fcd_filtered(bold, 10, 2, mask, include_last=False)
    for b in range(2):
        rF, _ = ref_fcd(bold[b], 10, 2, False)
        rFi, stack = ref_fcd(bold[b], 10, 2, False, mask)
        np.testing.assert_allclose(F[b], rF, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(Fi[b], rFi, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(sd[b], np.std(stack), rtol=RTOL, atol=ATOL)


def test_fcd_constant_window_gives_nan_rows_only():
    bold = random_bold(2, 40, 5)
    bold[1, 0:12, 3] = 1.0  # constant inside the first windows only
    got = fcd(bold, 8, 2)
    assert np.isfinite(got[0]).all()
    assert np.isnan(got[1, 0]).all() and np.isfinite(got[1, -1, -1])


def test_fcd_too_few_windows():
    with pytest.raises(ValueError, match="window"):
        fcd(random_bold(1, 10, 4), 10, 1)
