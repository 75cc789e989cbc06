"""Engine threads: the lane groups of one call run on T worker threads; any T and any split of the
simulations into calls gives the same bits (each group has its own history ring and outputs)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.sim.conftest import FIXED
from tvbinv_hpc.errors import ConfigError
from tvbinv_hpc.sim import Engine

N_SIMS = 11          # two full lane groups of 4 and a padded one of 3


@pytest.fixture(scope="module")
def engine():
    from tvbinv_hpc.sim.connectome import load_connectome
    conn = load_connectome("connectivity_66", 3.0, "max", False)
    return Engine(conn, dt=0.01, length=30.0, fixed=FIXED, seed=5, ms_per_unit=10.0, tavg_period=0.1,
                  bold_tr=10.0, threads=1)


def _values(nsim: int) -> dict[str, np.ndarray]:
    rs = np.random.default_rng(3)
    return {"coupling.a": rs.uniform(0.1, 0.6, nsim), "model.eta": rs.uniform(-5.0, -4.2, (nsim, 66)),
            "integrator.noise.nsig": rs.uniform(0.01, 0.05, (nsim, 2))}


def _run(engine: Engine, threads: int, chunk: int, record: str | None = "tavg"):
    """All N_SIMS simulations in calls of ``chunk`` simulations on ``threads`` threads, concatenated."""
    engine.threads = threads
    vals, index = _values(N_SIMS), np.arange(200, 200 + N_SIMS)
    parts = [engine.simulate({k: v[s:s + chunk] for k, v in vals.items()}, index[s:s + chunk], record=record)
             for s in range(0, N_SIMS, chunk)]
    return {k: np.concatenate([getattr(p, k) for p in parts]) for k in ("bold", "status", "steps", "tavg")}


def test_any_thread_count_and_batch_size_gives_the_same_bits(engine):
    ref = _run(engine, 1, N_SIMS)
    assert (ref["status"] == 1).all() and np.isfinite(ref["bold"]).all()
    for threads, chunk in ((2, N_SIMS), (3, N_SIMS), (2, 5), (3, 2), (4, 8)):
        got = _run(engine, threads, chunk)
        for key, a in ref.items():
            assert a.tobytes() == got[key].tobytes(), f"{key} differs with {threads} threads, calls of {chunk}"


def test_divergence_stays_in_its_group_on_threads(engine):
    """A group whose lanes all diverge stops early on its thread; the other groups are unaffected."""
    fixed = Engine(engine.connectome, dt=0.01, length=30.0, fixed=FIXED, seed=5, ms_per_unit=10.0,
                   tavg_period=0.1, bold_tr=10.0, scheme="fixed", threads=1)
    vals = _values(8)
    vals["coupling.a"][:4] = 5.0                       # the whole first group blows up within ~50 steps
    one = fixed.simulate(vals, np.arange(8))
    fixed.threads = 2
    two = fixed.simulate(vals, np.arange(8))
    assert one.status.tolist() == [2] * 4 + [1] * 4
    for key in ("bold", "status", "steps"):
        assert getattr(one, key).tobytes() == getattr(two, key).tobytes()
    assert two.steps[:4].max() < fixed.nstep // 10 and (two.steps[4:] == fixed.nstep).all()


def test_rows_per_batch_fills_every_thread(engine):
    engine.threads = 1
    assert [engine.rows_per_batch(b) for b in (1, 3, 4, 9)] == [1, 3, 4, 9]   # one thread: as configured
    engine.threads = 2
    assert [engine.rows_per_batch(b) for b in (1, 3, 8, 9)] == [8, 8, 8, 16]  # whole lane groups x threads
    engine.threads = 3
    assert engine.rows_per_batch(4) == 12


def test_thread_setting(engine, monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    engine.threads = "auto"
    assert engine.threads == 3
    engine.threads = 2
    assert engine.threads == 2
    for bad in (0.5, -1, "many", True):
        with pytest.raises(ConfigError, match="budget.threads"):
            engine.threads = bad
