"""The delay-split topology: every delayed edge in exactly one level whose window it may use (d >= window),
so that a dense connectome with a few short tracts keeps long windows for the others."""
from __future__ import annotations

import numpy as np
import pytest

from tests.sim.conftest import FIXED
from tvbinv_hpc.sim.coupling import make_topology


def _dense(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rs = np.random.default_rng(seed)
    w = rs.uniform(0.0, 1.0, (n, n))
    d = rs.integers(1, 400, (n, n))
    d[rs.random((n, n)) < 0.05] = rs.integers(1, 12, 1)       # a few short tracts, as in DTI
    np.fill_diagonal(d, 0)
    return w, d


@pytest.mark.parametrize("max_block", [128, 64, 5])
def test_every_edge_once_in_a_level_it_may_use(max_block):
    w, d = _dense()
    top = make_topology(w, d, np.float32, max_block)
    assert top.block == top.lvl_k[0] == min(max_block, d.max()) and top.horizon == d.max() + 1
    assert np.all(np.diff(top.lvl_k) < 0) and top.lvl_ptr.shape == (top.lvl_k.size, w.shape[0] + 1)
    seen = set()
    for lvl, win in enumerate(top.lvl_k):
        for i in range(w.shape[0]):
            for e in range(top.lvl_ptr[lvl, i], top.lvl_ptr[lvl, i + 1]):
                j = top.far_src[e]
                assert top.far_d[e] == d[i, j] >= win and top.far_w[e] == np.float32(w[i, j])
                # the longest window it may use: the next longer level would be too long
                assert lvl == 0 or d[i, j] < top.lvl_k[lvl - 1]
                seen.add((i, j))
    off = {(i, j) for i in range(w.shape[0]) for j in range(w.shape[0]) if i != j}
    assert seen == off and np.array_equal(top.self_w, np.diag(w).astype(np.float32))


def test_dense_connectome_keeps_long_windows():
    """Shortest delay 1 step: before, every edge was summed one step at a time; now only the short ones."""
    w, d = _dense()
    d[0, 1] = 1
    top = make_topology(w, d, np.float32, 128)
    in_top = top.lvl_ptr[0, -1] - top.lvl_ptr[0, 0]
    assert top.block == 128 and top.lvl_k[-1] == 1 and in_top > 0.6 * np.count_nonzero(d)


def test_dense_fast_kernel_agrees_with_tvb_order():
    """Many levels (delays 1-399 steps) and both coupling variables: fast kernel vs TVB's summation order."""
    from tvbinv_hpc.sim import Engine
    from tvbinv_hpc.sim.connectome import Connectome

    w, d = _dense(12, seed=4)
    conn = Connectome(w / w.sum(1, keepdims=True), d * 0.3, [f"r{i}" for i in range(12)], speed=3.0)
    fixed = {**FIXED, "integrator.noise.nsig": 0.0, "coupling.a": 0.4, "model.cv": 0.3}
    kw = dict(dt=0.01, length=15.0, fixed=fixed, seed=3, ms_per_unit=10.0, tavg_period=0.1, bold_tr=10.0)
    fast = Engine(conn, history_dtype=np.float64, **kw)
    exact = Engine(conn, tvb_order=True, **kw)
    assert fast.topology.lvl_k.size > 4
    a = fast.simulate({}, np.arange(2), record="raw").raw
    b = exact.simulate({}, np.arange(2), record="raw").raw
    assert np.all(np.isfinite(a)) and np.abs(a - b).max() < 1e-4 and np.ptp(a[:, 200:, 0]) > 0.05
