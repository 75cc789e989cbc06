"""Benchmark: where one core's time goes inside the engine's kernel.

``tvbinv-hpc bench --parts [--steps N] [--repeats R] [--lanes B]``.  Each part of a step (delayed coupling,
normals, Heun step, ring write, temporal-average sample with the Balloon model) is timed on its own, in a
numba loop over the kernel's own functions with the kernel's array shapes, at the bench's setup
(engine.SETUP: connectivity_76 at 3 mm per model unit, B lanes, float32 history, one thread), next to the
whole kernel.  The coupling is timed a second time with its delays divided by four, so that the history ring
fits the core's L2 cache: the difference is what streaming the ring from L3 costs.  Parts share the caches
inside the kernel, so they need not add up to it exactly.
"""
from __future__ import annotations

import argparse
import time

import numba as nb
import numpy as np

from tvbinv_hpc.bench.engine import SETUP, bench_engine, make_engine, one_thread
from tvbinv_hpc.sim.lanes import L_NW, L_SIM, N_LANE_FIELDS, sample_lanes
from tvbinv_hpc.sim.mpr import _delayed_input, _heun, _normals, _store


@nb.njit(cache=True)
def _loop_coupling(nstep, hist, lvl_k, lvl_ptr, far_src, far_w, far_d, R, K, acc, acct, lanes_t):
    s = 0
    while s < nstep:
        for k in range(K):
            _delayed_input(hist, lvl_k, lvl_ptr, far_src, far_w, far_d, 1, (s + k) % R, R, k, K, acc, acct,
                           lanes_t)
        s += K


@nb.njit(cache=True)
def _loop_normals(nstep, n, nctr, k1, k2, zw, z):
    for s in range(nstep):
        _normals(np.uint64(s) * np.uint64(n), nctr, k1, k2, zw, z)


@nb.njit(cache=True)
def _loop_heun(nstep, x, xn, par, acct, selfw, z, K, dt, h_max):
    n_stiff = 0
    for s in range(nstep):
        n_stiff += _heun(x, xn, par, acct, selfw, z, s % K, 1, dt, h_max)
        x, xn = xn, x
    return n_stiff


@nb.njit(cache=True)
def _loop_store(nstep, x, tsum, hist, R, K, lanes_t):
    for s in range(nstep):
        _store(x, tsum, hist, s % R, R, K, 1, lanes_t)


@nb.njit(cache=True)
def _loop_sample(nstep, istep, tsum, tmean, lane, ls, bad, rec, balloon, btmp, wsum, bold_dt, every, bold_out):
    ls[L_NW] = 0                # BOLD samples written: each timing writes its own
    for s in range(istep, nstep + 1, istep):
        tsum[:] = 0.3 * istep   # a constant r of 0.3 drives the Balloon model
        sample_lanes(s, istep, tsum, tmean, lane, ls, bad, rec, balloon, btmp, wsum, bold_dt, every, 0, 0, 0,
                     bold_out)


def _per_step(fn, args, nstep: int, lanes: int, repeats: int) -> float:
    """µs per simulation-step of fn(nstep, *args): CPU time, median of repeats, JIT excluded."""
    fn(min(nstep, 256), *args)
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn(nstep, *args)
        times.append(time.process_time() - t0)
    return float(np.median(times)) / (nstep * lanes) * 1e6


def measure(nstep: int, repeats: int, lanes: int) -> list[tuple[str, float]]:
    """(part, µs per simulation-step) for each part and the whole kernel."""
    from tvbinv_hpc.sim import params

    eng = make_engine(nstep, lanes)
    top, n, K = eng.topology, eng.n_regions, eng.topology.block
    nflat = n * lanes
    lanes_t = (0,) * lanes
    rs = np.random.default_rng(0)
    out = []
    acc = np.zeros(K * lanes, np.float32)
    acct = np.zeros((1, K, nflat), np.float32)
    for label, delays in (("", top.far_d), (" delays / 4", np.maximum(top.far_d // 4, K))):
        R = int(delays.max()) + 1
        hist = rs.uniform(0.0, 0.5, (2, n, (R + K) * lanes)).astype(np.float32)
        us = _per_step(_loop_coupling, (hist, top.lvl_k, top.lvl_ptr, top.far_src, top.far_w, delays, R, K, acc,
                                        acct, lanes_t), nstep, lanes, repeats)
        out.append((f"delayed coupling{label} (ring {hist[0].nbytes / 1e6:.1f} MB)", us))
    k1 = rs.integers(1, 2**63, nflat).astype(np.uint64)
    z = np.zeros((2, nflat), np.float32)
    out.append(("normals (hash + Box-Muller)",
                _per_step(_loop_normals, (n, np.arange(nflat, dtype=np.uint64), k1, k1 ^ np.uint64(7),
                                          np.zeros((2, nflat), np.uint32), z), nstep, lanes, repeats)))
    res = params.resolve(eng.fixed, {}, lanes, n)
    table = params.lane_table(res, np.arange(lanes), eng.dt)
    # near the down state, with zero normals (the same operations; random ones held fixed would drift away)
    x = np.vstack([rs.uniform(0.05, 0.3, nflat), rs.uniform(-2.2, -1.5, nflat)])
    out.append(("Heun step (adaptive test included)",
                _per_step(_loop_heun, (x, np.empty_like(x), table, acct, np.repeat(top.self_w, lanes), z * 0, K,
                                       eng.dt, 0.6), nstep, lanes, repeats)))
    R = eng.horizon
    hist = np.zeros((2, n, (R + K) * lanes), np.float32)
    out.append(("ring write + average sums",
                _per_step(_loop_store, (x, np.zeros((2, nflat)), hist, R, K, lanes_t), nstep, lanes, repeats)))
    ls = np.zeros((N_LANE_FIELDS, lanes), np.int64)
    ls[L_SIM] = np.arange(lanes)
    n_samples = nstep // eng.istep
    balloon = np.ones((4, nflat))
    balloon[0] = 0.0
    out.append(("average sample + Balloon BOLD",
                _per_step(_loop_sample, (eng.istep, np.zeros((2, nflat)), np.zeros((2, nflat)),
                                         np.arange(nflat) % lanes, ls, np.zeros(lanes, np.bool_),
                                         np.zeros((lanes, 0, 2, n)), balloon, np.zeros((8, nflat)),
                                         np.zeros(nflat), eng.bold_dt_s, eng.bold_every,
                                         np.zeros((lanes, n_samples // eng.bold_every + 2, n), np.float32)),
                          nstep, lanes, repeats)))
    out.append(("whole kernel (BOLD included)", bench_engine(nstep, repeats, lanes)[0]))
    return out


def report(rows: list[tuple[str, float]]) -> list[str]:
    """The table: each part's µs per simulation-step and its share of the whole kernel."""
    whole = rows[-1][1]
    parts = [r for r in rows[:-1] if "delays / 4" not in r[0]]
    lines = [f"  {name:<48s} {us:7.3f} us  {us / whole:6.1%}" for name, us in rows[:-1]]
    label = "sum of the parts (without the delays / 4 line)"
    lines.append(f"  {label:<48s} {sum(u for _, u in parts):7.3f} us")
    lines.append(f"  {rows[-1][0]:<48s} {whole:7.3f} us")
    return lines


def main(argv: list[str] | None = None) -> int:
    one_thread()
    p = argparse.ArgumentParser(prog="tvbinv-hpc bench --parts", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=51_200, help="steps per timing (default 51200)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per timing, median taken (default 3)")
    p.add_argument("--lanes", type=int, default=4, help="simulations per kernel call (default 4)")
    args = p.parse_args(argv)
    s = SETUP
    print(f"kernel parts: {s['connectome']}, speed {s['speed']} mm/ms, dt {s['dt']}, a {s['a']}, "
          f"B={args.lanes}, float32 history, {args.steps} steps, CPU time, medians of {args.repeats}, 1 thread; "
          f"us per simulation-step and share of the whole kernel")
    for line in report(measure(args.steps, args.repeats, args.lanes)):
        print(line)
    return 0
