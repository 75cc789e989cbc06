"""Counter-based normals and the vectorisable elementary functions behind them."""
from __future__ import annotations

import numba as nb
import numpy as np
from scipy import stats

from tvbinv_hpc.sim import rng
from tvbinv_hpc.sim.vmath import log32_positive, sincos_quarter32, vexp, vlog, wide_vectors


def test_normals_are_standard_normal():
    k1, k2 = rng.sim_keys(42, np.arange(2))
    z = rng.normals(k1[0], k2[0], np.uint64(0), 200_000)
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.var() - 1) < 0.01
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(stats.kurtosis(z)) < 0.05 and abs(stats.skew(z)) < 0.03
    assert 0.0015 < np.mean(np.abs(z) > 3) < 0.0040                       # P(|z| > 3) = 0.0027
    pairs = z.reshape(-1, 2)
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 0.01          # the Box-Muller partners
    other = rng.normals(k1[1], k2[1], np.uint64(0), 200_000)
    assert abs(np.corrcoef(z, other)[0, 1]) < 0.01                          # another simulation
    big = rng.normals(k1[1], k2[1], np.uint64(10**9), 1_000_000)
    assert 60 < np.sum(np.abs(big) > 4) < 200                                # P(|z| > 4) = 6.3e-5
    assert np.all(np.isfinite(big)) and np.abs(big).max() < 6.78
    shifted = rng.normals(k1[0], k2[0], np.uint64(1), 200_000)
    assert np.array_equal(shifted[:-2], z[2:])                              # counter-based: pure in the counter


def test_keys_depend_only_on_seed_and_index():
    k1, k2 = rng.sim_keys(7, np.array([5, 3, 9]))
    a1, a2 = rng.sim_keys(7, np.array([9]))
    assert k1[2] == a1[0] and k2[2] == a2[0]
    b1, _ = rng.sim_keys(8, np.array([5]))
    assert b1[0] != k1[0] and len(set(rng.sim_keys(7, np.arange(1000))[0].tolist())) == 1000


def test_uniforms_in_unit_interval():
    k1, k2 = rng.sim_keys(1, np.arange(1))
    u = rng.uniforms(k1[0], k2[0], rng.HISTORY_DOMAIN, 100_000)
    assert u.min() >= 0 and u.max() < 1 and stats.kstest(u, "uniform").pvalue > 1e-3


@nb.njit(error_model="numpy")
def _apply(x, out_log, out_exp):
    for i in range(x.size):
        out_log[i] = vlog(x[i])
        out_exp[i] = vexp(x[i])


def test_vlog_vexp_accuracy_and_specials():
    x = np.r_[np.geomspace(1e-300, 1e300, 20001), np.linspace(-700, 700, 20001), 0.0, -1.0, np.inf, np.nan,
              -np.inf, 800.0, -800.0, 1.0]
    lg, ex = np.empty_like(x), np.empty_like(x)
    _apply(x, lg, ex)
    with np.errstate(all="ignore"):
        ref_l, ref_e = np.log(x), np.exp(x)
    m = np.isfinite(ref_l) & (ref_l != 0)
    assert np.max(np.abs(lg[m] - ref_l[m]) / np.abs(ref_l[m])) < 1e-14
    m = np.isfinite(ref_e) & (ref_e > 1e-300)
    assert np.max(np.abs(ex[m] - ref_e[m]) / ref_e[m]) < 1e-14
    np.testing.assert_array_equal(lg[-9:], ref_l[-9:])
    np.testing.assert_array_equal(ex[-9:-1], ref_e[-9:-1])


@nb.njit(error_model="numpy")
def _apply32(x, psi, out_log, out_sin, out_cos):
    for i in range(x.size):
        out_log[i] = log32_positive(x[i])
        out_sin[i], out_cos[i] = sincos_quarter32(psi[i])


def test_float32_helpers_of_box_muller():
    x = np.geomspace(0.5, 2.0**32, 10001).astype(np.float32)
    psi = np.linspace(-np.pi / 4, np.pi / 4, 10001).astype(np.float32)
    lg, sn, cs = (np.empty(x.size, np.float32) for _ in range(3))
    _apply32(x, psi, lg, sn, cs)
    ref = np.log(x.astype(np.float64))
    assert np.max(np.abs(lg - ref) / np.maximum(np.abs(ref), 1.0)) < 3e-7
    assert np.max(np.abs(sn - np.sin(psi.astype(np.float64)))) < 3e-7
    assert np.max(np.abs(cs - np.cos(psi.astype(np.float64)))) < 3e-7


def test_pairwise_sum_is_numpys_reduceat_order():
    """The tvb_order mode's row sum equals np.add.reduceat on float32 (what TVB's sparse coupling calls)."""
    from tvbinv_hpc.sim.mpr import pairwise_sum
    rs = np.random.default_rng(3)
    zero = np.float32(0.0)
    for n in list(range(1, 140)) + [200, 242, 243, 255, 256, 257, 300, 469, 470, 511, 512, 700, 900]:
        a = (rs.standard_normal(n) * 10.0 ** rs.uniform(-3, 3, n)).astype(np.float32)
        ref = np.add.reduceat(a, np.array([0]))[0]
        ours = a[0] + pairwise_sum(a, 1, n - 1, zero)
        assert ours == ref, n


def _axpy(a, x, y):
    for i in range(x.size):
        y[i] = a * x[i] + y[i] * y[i]


def _axpy_wide(a, x, y):
    wide_vectors()
    for i in range(x.size):
        y[i] = a * x[i] + y[i] * y[i]


def test_wide_vectors_marks_the_function_and_keeps_its_results():
    """wide_vectors() adds LLVM's prefer-vector-width=512 to the calling function, nothing else."""
    plain = nb.njit(error_model="numpy", fastmath={"contract"})(_axpy)
    wide = nb.njit(error_model="numpy", fastmath={"contract"})(_axpy_wide)
    x = np.random.default_rng(0).random(1001)
    y0 = np.random.default_rng(1).random(1001)
    y1, y2 = y0.copy(), y0.copy()
    plain(0.3, x, y1)
    wide(0.3, x, y2)
    np.testing.assert_array_equal(y1, y2)
    ir = "\n".join(wide.inspect_llvm().values())
    assert '"prefer-vector-width"="512"' in ir
    assert "prefer-vector-width" not in "\n".join(plain.inspect_llvm().values())
