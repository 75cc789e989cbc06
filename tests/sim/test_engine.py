"""Engine behaviour: determinism across batches, divergence isolation, runtime parameters, memory bounds."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tests.sim.conftest import FIXED
from tvbinv_hpc.sim import PARAMETERS, STATUS_DIVERGED, STATUS_OK, Engine, SimResult, mpr


@pytest.fixture(scope="module")
def engine():
    from tvbinv_hpc.sim.connectome import load_connectome
    conn = load_connectome("connectivity_66", 3.0, "max", False)
    return Engine(conn, dt=0.01, length=30.0, fixed=FIXED, seed=11, ms_per_unit=10.0, tavg_period=0.1,
                  bold_tr=10.0)


def _values(nsim, seed=0):
    rs = np.random.default_rng(seed)
    return {"coupling.a": rs.uniform(0.1, 0.6, nsim), "model.eta": rs.uniform(-5.0, -4.2, (nsim, 66)),
            "integrator.noise.nsig": rs.uniform(0.01, 0.05, (nsim, 2))}


def test_contract(engine):
    assert set(PARAMETERS) == {"model.tau", "model.I", "model.Delta", "model.J", "model.eta", "model.cr",
                               "model.cv", "coupling.a", "coupling.b", "integrator.noise.nsig"}
    assert (STATUS_OK, STATUS_DIVERGED) == (1, 2)
    res = engine.simulate(_values(3), np.arange(3))
    assert isinstance(res, SimResult)
    assert res.bold.dtype == np.float32 and res.bold.shape == (3, engine.n_bold, engine.n_regions)
    assert res.status.dtype == np.int8 and res.status.tolist() == [1, 1, 1]
    assert engine.n_bold == 30 and engine.tr_ms == 10.0 and engine.nstep == 3000
    assert len(engine.region_labels) == engine.n_regions == 66 and engine.horizon > 100
    assert np.all(np.isfinite(res.bold)) and np.ptp(res.bold[:, 5:]) > 0


def test_same_index_same_result_in_any_batch(engine):
    """Simulation i alone, in a batch of 7 (a lane group and a padded one), at another position: bit-equal."""
    vals = _values(7, seed=1)
    index = np.arange(100, 107)
    batch = engine.simulate(vals, index)
    for pos in (0, 4, 6):
        alone = engine.simulate({k: v[pos:pos + 1] for k, v in vals.items()}, index[pos:pos + 1])
        assert np.array_equal(alone.bold[0], batch.bold[pos])
    perm = np.array([6, 2, 5, 0, 3, 1, 4])
    shuffled = engine.simulate({k: v[perm] for k, v in vals.items()}, index[perm])
    assert np.array_equal(shuffled.bold, batch.bold[perm])
    # noise and initial history differ between indices and between seeds
    assert not np.array_equal(batch.bold[0], engine.simulate({k: v[:1] for k, v in vals.items()},
                                                             np.array([999])).bold[0])


def test_seed_changes_noise_and_history(engine):
    other = Engine(engine.connectome, dt=0.01, length=30.0, fixed=FIXED, seed=12, ms_per_unit=10.0,
                   tavg_period=0.1, bold_tr=10.0)
    a = engine.simulate({}, np.array([0]), nstep=50, record="raw").raw
    b = other.simulate({}, np.array([0]), nstep=50, record="raw").raw
    assert not np.array_equal(a[0, 0], b[0, 0])


def test_divergence_is_isolated(engine):
    """TVB's fixed step (the adaptive scheme keeps these runs finite, see test_stability)."""
    engine = Engine(engine.connectome, dt=0.01, length=30.0, fixed=FIXED, seed=11, ms_per_unit=10.0,
                    tavg_period=0.1, bold_tr=10.0, scheme="fixed")
    vals = _values(6, seed=2)
    ok = engine.simulate(vals, np.arange(6))
    bad_vals = {k: v.copy() for k, v in vals.items()}
    bad_vals["coupling.a"][[1, 4]] = 5.0                  # blows up within ~50 steps
    mixed = engine.simulate(bad_vals, np.arange(6))
    assert mixed.status.tolist() == [1, 2, 1, 1, 2, 1]
    assert np.all(np.isnan(mixed.bold[[1, 4]]))
    keep = [0, 2, 3, 5]
    assert np.array_equal(mixed.bold[keep], ok.bold[keep])
    # a batch made only of divergent runs stops early
    stop = engine.simulate({"coupling.a": np.array([5.0, 8.0])}, np.array([0, 1]))
    assert stop.status.tolist() == [2, 2] and stop.steps.max() < engine.nstep // 10


def test_runtime_values_never_recompile(engine):
    engine.simulate(_values(2), np.arange(2))
    n_sigs = len(mpr.run_lanes.signatures)
    for seed in range(3):
        vals = _values(2, seed=seed + 10)
        vals.update({"model.tau": np.array([1.0, 1.1]), "model.J": np.array([14.0, 15.0]),
                     "model.Delta": np.array([0.6, 0.8]), "model.I": np.array([0.0, 0.1]),
                     "model.cr": np.array([1.0, 0.9]), "model.cv": np.array([0.0, 0.2]),
                     "coupling.b": np.array([0.0, 0.01])})
        engine.simulate(vals, np.arange(2), nstep=100)
    assert len(mpr.run_lanes.signatures) == n_sigs


def test_value_shapes(engine):
    n = engine.n_regions
    base = engine.simulate({}, np.array([4]), nstep=200, record="raw").raw
    same = engine.simulate({"model.eta": np.full((1, n), -4.6), "integrator.noise.nsig": np.array([[0.035, 0.07]]),
                            "coupling.a": np.array([0.5])}, np.array([4]), nstep=200, record="raw").raw
    assert np.array_equal(base, same)
    quiet = engine.simulate({"integrator.noise.nsig": np.zeros(1)}, np.array([4]), nstep=200, record="raw").raw
    assert not np.array_equal(base, quiet)
    with pytest.raises(ValueError, match="model.eta"):
        engine.simulate({"model.eta": np.zeros((2, n + 1))}, np.arange(2))
    with pytest.raises(ValueError, match="unknown"):
        engine.simulate({"model.gamma": np.zeros(1)}, np.arange(1))


def test_noise_amplitude_per_variable(engine):
    """nsig (r, V) per variable: noise only on V moves V by sqrt(2 nsig dt) z and r only through the
    corrector (O(dt) of that)."""
    det = engine.simulate({"integrator.noise.nsig": np.zeros(1)}, np.array([1]), nstep=1, record="raw").raw
    v_only = engine.simulate({"integrator.noise.nsig": np.array([[0.0, 0.1]])}, np.array([1]), nstep=1,
                             record="raw").raw
    amp = np.sqrt(2 * 0.1 * 0.01)
    assert 0.6 < np.std(v_only[0, 0, 1] - det[0, 0, 1]) / amp < 1.4
    assert np.std(v_only[0, 0, 0] - det[0, 0, 0]) < 0.1 * amp


def test_memory_is_bounded_by_horizon(engine):
    """Long runs allocate O(B N horizon): the history ring, never O(nstep N)."""
    n, nb = engine.n_regions, engine.lanes
    ring = engine.history_nbytes()
    assert ring == 2 * n * (engine.horizon + engine.topology.block) * nb * 4
    peaks = {}
    for nstep in (2_000, 40_000):
        tracemalloc.start()
        engine.simulate({}, np.arange(nb), nstep=nstep)
        peaks[nstep] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # 20x more steps: same peak up to the (small) BOLD output; all well under one O(nstep N) trajectory
    assert peaks[40_000] - peaks[2_000] < 0.1 * 40_000 * n * 8
    assert peaks[40_000] < 4 * ring


def test_explicit_initial_history(engine):
    n = engine.n_regions
    const = np.vstack([np.full(n, 0.5), np.full(n, -1.0)])
    e2 = Engine(engine.connectome, dt=0.01, length=1.0, fixed={**FIXED, "integrator.noise.nsig": 0.0}, seed=1,
                ms_per_unit=10.0, tavg_period=0.1, bold_tr=10.0, initial_history=const)
    a = e2.simulate({}, np.array([0, 1]), record="raw").raw
    assert np.array_equal(a[0], a[1])                 # no noise + same history: index does not matter
    from tvbinv_hpc.errors import ConfigError
    with pytest.raises(ConfigError, match="initial_history"):
        Engine(engine.connectome, dt=0.01, length=1.0, fixed=FIXED, seed=1, tavg_period=0.1, bold_tr=10.0,
               ms_per_unit=10.0, initial_history=np.zeros((3, 2, n)))


def test_random_history_is_lane_history(engine):
    """The random initial history is a pure function of (seed, index), in TVB's ranges; passing it back
    explicitly reproduces the run bit for bit (float32 ring, float64 current state)."""
    from tvbinv_hpc.sim import rng
    k1, k2 = rng.sim_keys(engine.seed, np.array([42]))
    h = engine.lane_history(k1[0], k2[0])
    assert h.shape == (engine.horizon, 2, engine.n_regions)
    assert 0 <= h[:, 0].min() and h[:, 0].max() <= 2 and -2 <= h[:, 1].min() and h[:, 1].max() <= 1.5
    assert abs(h[:, 0].mean() - 1.0) < 0.01 and abs(h[:, 1].mean() + 0.25) < 0.01
    explicit = Engine(engine.connectome, dt=0.01, length=30.0, fixed=FIXED, seed=engine.seed, ms_per_unit=10.0,
                      tavg_period=0.1, bold_tr=10.0, initial_history=h)
    a = engine.simulate({}, np.array([42]), nstep=300, record="raw").raw
    b = explicit.simulate({}, np.array([42]), nstep=300, record="raw").raw
    assert np.array_equal(a, b)


@pytest.mark.parametrize("min_delay_steps", [1, 7])
def test_zero_delay_and_short_delay_edges(min_delay_steps):
    """Off-diagonal zero-delay edges (local CSR path), self-connections, and a shortest delay of 1 step or 7
    (that edge summed over windows of 1 or 4 steps, the others over longer ones): the fast kernel agrees with
    the TVB-order mode (bit-identical to TVB's Simulator)."""
    from tvbinv_hpc.sim.connectome import Connectome
    rs = np.random.default_rng(min_delay_steps)
    n = 6
    w = rs.uniform(0.1, 1.0, (n, n)) * (rs.random((n, n)) < 0.7)
    tl = rs.uniform(3.0, 30.0, (n, n))
    tl[0, 1] = tl[2, 3] = tl[4, 4] = tl[1, 1] = 0.0                   # zero delays, off-diagonal and self
    tl[3, 5] = min_delay_steps * 0.3              # speed 3 m/s, steps of dt * ms_per_unit = 0.1 ms: 0.3 mm
    w[3, 5] = w[0, 1] = w[2, 3] = w[4, 4] = 0.5
    conn = Connectome(w, tl, [f"r{i}" for i in range(n)], speed=3.0)
    fixed = {**FIXED, "integrator.noise.nsig": 0.0, "coupling.a": 0.3, "model.cv": 0.4}
    kw = dict(dt=0.01, length=10.0, fixed=fixed, seed=2, ms_per_unit=10.0, tavg_period=0.1, bold_tr=10.0)
    fast = Engine(conn, history_dtype=np.float64, **kw)
    exact = Engine(conn, tvb_order=True, **kw)
    assert fast.topology.block > min_delay_steps >= fast.topology.lvl_k[-1] > min_delay_steps // 2
    assert fast.topology.loc_src.size == 2
    a = fast.simulate({}, np.arange(2), record="raw").raw
    b = exact.simulate({}, np.arange(2), record="raw").raw
    print("max diff", np.abs(a - b).max(), "range", np.ptp(a))
    assert np.all(np.isfinite(a)) and np.abs(a - b).max() < 1e-4 and np.ptp(a[:, 100:, 0]) > 0.1


def test_fast_path_is_within_rounding_of_the_exact_path(engine):
    """The fast Heun step fuses multiply-adds; Engine(exact=True) (and tvb_order) rounds as TVB does."""
    exact = Engine(engine.connectome, dt=0.01, length=30.0, fixed=FIXED, seed=11, ms_per_unit=10.0,
                   tavg_period=0.1, bold_tr=10.0, exact=True)
    a = engine.simulate(_values(2), np.arange(2), nstep=200, record="raw").raw
    b = exact.simulate(_values(2), np.arange(2), nstep=200, record="raw").raw
    assert np.abs(a - b).max() < 1e-9 * np.abs(b).max()
    assert Engine(engine.connectome, dt=0.01, length=1.0, fixed=FIXED, seed=1, ms_per_unit=10.0,
                  tavg_period=0.1, bold_tr=10.0, tvb_order=True).exact


_WIDTH_SCRIPT = """
import hashlib, numpy as np
from tvbinv_hpc.sim.connectome import load_connectome
from tvbinv_hpc.sim import Engine
FIXED = {fixed!r}
conn = load_connectome("connectivity_66", 3.0, "max", False)
e = Engine(conn, dt=0.01, length=5.0, fixed=FIXED, seed=11, ms_per_unit=10.0, tavg_period=0.1, bold_tr=10.0,
           threads=1)
for n in (3, 5):        # a padded group; 66 * 4 = 264 nodes: not a multiple of 16, so partial vectors too
    r = e.simulate({{"coupling.a": np.linspace(0.1, 0.6, n)}}, np.arange(n), record="raw")
    print(hashlib.sha256(r.raw.tobytes() + r.bold.tobytes()).hexdigest())
"""


def test_vector_width_does_not_change_results(tmp_path):
    """The same simulations compiled for 512- or 256-bit vectors (the kernel asks for 512 bits where the CPU
    has them, and clusters mix node types): no loop reassociates, so every element gets the same operations
    and bits.  256 bits: AVX-512 switched off.  (A CPU without FMA, i.e. older than 2013, rounds the fused
    multiply-adds of the fast path in two steps and gets other bits: measured with AVX switched off.)"""
    import os
    import subprocess
    import sys

    import llvmlite.binding as llb

    features = llb.get_host_cpu_features().flatten()
    if "+avx512f" not in features.split(","):
        pytest.skip("no AVX-512: one vector width only")
    script = tmp_path / "width.py"
    script.write_text(_WIDTH_SCRIPT.format(fixed=FIXED))
    out = []
    for extra in ("", ",-avx512f", ",+prefer-256-bit"):
        env = {**os.environ, "NUMBA_CPU_FEATURES": features + extra}
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env)
        assert res.returncode == 0, res.stderr
        out.append(res.stdout)
    assert out[0] == out[1] == out[2] and len(out[0].split()) == 2


def test_heun_loop_is_vectorised():
    """The fast Heun loop must stay a vector loop (a branch or a call in it kept LLVM from vectorising it in
    a fresh compile: 1.5x slower per simulation-step, README Performance).  Compiled here without numba's
    cache, as a new install compiles it."""
    import platform
    import re

    import numba as nb

    from tvbinv_hpc.sim import params

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("checks x86 packed instructions")
    heun = nb.njit(error_model="numpy", fastmath=mpr.FMA)(mpr._heun.py_func)
    n, lanes, k = 5, 4, 3
    res = params.resolve({key: np.zeros((2, n)) if key == params.NSIG else np.ones(n) for key in params.PARAMETERS},
                         {}, lanes, n)
    x = np.ones((2, n * lanes))
    heun(x, np.empty_like(x), params.lane_table(res, np.arange(lanes), 0.01), np.zeros((1, k, n * lanes), np.float32),
         np.zeros(n * lanes, np.float32), np.zeros((2, n * lanes), np.float32), np.int64(0), np.int64(1), 0.01,
         0.6)              # int64, not literals: the kernel's types (a literal nv would fold its branch)
    asm = "\n".join(heun.inspect_asm().values())
    packed = len(re.findall(r"\bv?(?:mul|add|sub|fmadd\w*)pd\b", asm))
    scalar = len(re.findall(r"\bv?(?:mul|add|sub|fmadd\w*)sd\b", asm))
    assert packed >= 20, (packed, scalar)
