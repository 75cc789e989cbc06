"""Lanes as a work queue: a lane whose simulation diverged (or ended) takes the next pending simulation of the
call, started at that global step with its own history, noise counter, averages and Balloon state, so every
row is bit-identical to the simulation run alone, and the call takes fewer lane-steps than lock-step groups."""
from __future__ import annotations

import numpy as np
import pytest

from tests.sim.conftest import FIXED
from tvbinv_hpc.sim import Engine

DIVERGE = [0, 2, 5, 6, 9, 10]       # coupling 5: blows up within ~50 steps (TVB's fixed step)
N_SIMS = 13


@pytest.fixture(scope="module")
def conn66():
    from tvbinv_hpc.sim.connectome import load_connectome
    return load_connectome("connectivity_66", 3.0, "max", False)


def _values(nsim: int) -> dict[str, np.ndarray]:
    rs = np.random.default_rng(7)
    vals = {"coupling.a": rs.uniform(0.1, 0.6, nsim), "model.eta": rs.uniform(-5.0, -4.2, (nsim, 66)),
            "integrator.noise.nsig": rs.uniform(0.01, 0.05, (nsim, 2))}
    vals["coupling.a"][[i for i in DIVERGE if i < nsim]] = 5.0
    return vals


def _alone(engine: Engine, vals, index, record):
    return [engine.simulate({k: v[i:i + 1] for k, v in vals.items()}, index[i:i + 1], record=record)
            for i in range(index.size)]


# length 10.05: nstep 1005 is not a multiple of istep 10, so a lane that completes waits for the next sample
# step; bold_start "rest" and a steady start after a 20 ms warm-up exercise both Balloon starts
@pytest.mark.parametrize("length, bold_kw, record", [
    (30.0, {}, "tavg"),
    (10.05, {"bold_start": "rest"}, "raw"),
    (10.05, {"bold_warmup": 20.0, "bold_transient": 40.0}, "tavg"),
])
def test_refilled_rows_equal_rows_run_alone(conn66, length, bold_kw, record):
    engine = Engine(conn66, dt=0.01, length=length, fixed=FIXED, seed=3, ms_per_unit=10.0, tavg_period=0.1,
                    bold_tr=10.0, scheme="fixed", threads=1, **bold_kw)
    vals, index = _values(N_SIMS), np.arange(40, 40 + N_SIMS)
    batch = engine.simulate(vals, index, record=record)
    assert batch.status[DIVERGE].tolist() == [2] * len(DIVERGE)
    assert (np.delete(batch.status, DIVERGE) == 1).all() and (batch.steps[DIVERGE] < 400).all()
    alone = _alone(engine, vals, index, record)
    for key in ("bold", "status", "steps", "substeps", record):
        got = np.concatenate([getattr(a, key) for a in alone])
        assert got.tobytes() == getattr(batch, key).tobytes(), key
    # lock-step groups of 4 would each run until their last simulation ends
    groups = np.array_split(batch.steps, range(engine.lanes, N_SIMS, engine.lanes))
    lock_step = sum(engine.lanes * g.max() for g in groups)
    assert batch.lane_steps < 0.8 * lock_step
    assert batch.lane_steps >= batch.steps.sum()


def test_refill_on_threads_and_any_batch_split(conn66):
    engine = Engine(conn66, dt=0.01, length=10.05, fixed=FIXED, seed=3, ms_per_unit=10.0, tavg_period=0.1,
                    bold_tr=10.0, scheme="fixed", threads=1)
    vals, index = _values(N_SIMS), np.arange(40, 40 + N_SIMS)
    ref = engine.simulate(vals, index, record="tavg")
    for threads, chunk in ((2, N_SIMS), (3, 5), (1, 3)):
        engine.threads = threads
        parts = [engine.simulate({k: v[s:s + chunk] for k, v in vals.items()}, index[s:s + chunk],
                                 record="tavg") for s in range(0, N_SIMS, chunk)]
        for key in ("bold", "status", "steps", "substeps", "tavg"):
            got = np.concatenate([getattr(p, key) for p in parts])
            assert got.tobytes() == getattr(ref, key).tobytes(), (key, threads, chunk)
    empty = engine.simulate({}, np.arange(0))
    assert empty.bold.shape == (0, engine.n_bold, 66) and empty.lane_steps == 0


def test_given_initial_history_is_installed_at_the_lane_start(conn66):
    """An explicit initial history, installed mid-run in a refilled lane (at ring slots shifted by its start)."""
    probe = Engine(conn66, dt=0.01, length=10.0, fixed=FIXED, seed=3, ms_per_unit=10.0, tavg_period=0.1,
                   bold_tr=10.0)
    rs = np.random.default_rng(2)
    hist = np.stack([rs.uniform(0, 2, (probe.horizon, 66)), rs.uniform(-2, 1.5, (probe.horizon, 66))], 1)
    engine = Engine(conn66, dt=0.01, length=10.0, fixed=FIXED, seed=3, ms_per_unit=10.0, tavg_period=0.1,
                    bold_tr=10.0, scheme="fixed", threads=1, initial_history=hist)
    vals, index = _values(7), np.arange(7)
    batch = engine.simulate(vals, index, record="raw")
    alone = _alone(engine, vals, index, "raw")
    assert batch.status.tolist() == [2, 1, 2, 1, 1, 2, 2]
    assert np.concatenate([a.raw for a in alone]).tobytes() == batch.raw.tobytes()
    assert np.concatenate([a.bold for a in alone]).tobytes() == batch.bold.tobytes()
