"""The kernel's lanes as a work queue: each lane runs one simulation of the call at a time, and takes the
next pending one when its own ends (it diverged, or it reached nstep).

A lane's simulation keeps its own clock: it started at global step ``t0`` (its time 0), so its step s - t0
draws the noise counter (s - t0) * N + node, its history lives at ring positions (t - t0 + t0) mod R and
its temporal averages, Balloon state and BOLD samples count from t0.  Every operation of a lane is
elementwise (lanes never mix; the coupling sums of one step do not depend on where the time block that
computes them starts), so a simulation's bits are those it gets alone, whatever lane, start or neighbours.

Refills happen at time-block boundaries, and only at multiples of istep (``t0 % istep == 0``): all lanes
then share the temporal-average phase, so one sample loop serves them.  A divergence is seen at a sample
(a multiple of istep): the block is cut there and the lane refilled at once; a lane that completes nstep
between samples waits (< istep steps) for the next multiple.

Lane bookkeeping ``ls`` (N_LANE_FIELDS, nb) int64: the simulation (slot of the call, -1 = idle), its
start t0, the step at which the lane may take the next one, BOLD samples written.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from tvbinv_hpc.sim.bold import balloon_steady, balloon_step2, bold_signal
from tvbinv_hpc.sim.rng import fill_random_history
from tvbinv_hpc.sim.vmath import FMA, wide_vectors

L_SIM, L_T0, L_FREE, L_NW = 0, 1, 2, 3
N_LANE_FIELDS = 4
STATUS_DIVERGED = 2


@nb.njit(cache=True, error_model="numpy")
def install(b, sim, t0, nstep, istep, hist, x, par, tab, k1, k2, nctr, qk1, qk2, init_hist, R, K, ranges,
            tsum, wsum, balloon, ls, bad, nsub):
    """Lane b takes simulation ``sim`` of the call at global step t0 (its time 0): the initial history a
    fresh run gets, at the ring slots of times t0 - R + 1 .. t0 (and their mirror), its parameters, keys,
    noise counter offset, and cleared averages and Balloon state.  Overwrites only lane b."""
    n = hist.shape[1]
    nb_ = ls.shape[1]
    nq = qk1.size
    h4 = hist.reshape((2, n, hist.shape[2] // nb_, nb_))
    x3 = x.reshape((2, n, nb_))
    now = t0 % R
    if init_hist.shape[0] == 0:
        fill_random_history(h4, x3, b, qk1[sim], qk2[sim], R, R, ranges[0], ranges[1], ranges[2], ranges[3],
                            now)
    else:                                       # the given history (R, 2, N), oldest first
        for age in range(R):
            slot = (now + R - age) % R
            for v in range(2):
                for i in range(n):
                    h4[v, i, slot, b] = init_hist[R - 1 - age, v, i]
        for v in range(2):
            for i in range(n):
                x3[v, i, b] = init_hist[R - 1, v, i]
    for v in range(2):                          # the mirror of the first K slots
        for i in range(n):
            for slot in range(K):
                h4[v, i, R + slot, b] = h4[v, i, slot, b]
    # noise counter: base s * N plus this offset is (s - t0) * N + node (uint64 arithmetic wraps)
    off = np.uint64(t0) * np.uint64(n)
    for i in range(n):
        f = i * nb_ + b
        for p in range(par.shape[0]):
            par[p, f] = tab[p, i * nq + sim]
        k1[f], k2[f] = qk1[sim], qk2[sim]
        nctr[f] = np.uint64(i) - off
        tsum[0, f] = 0.0
        tsum[1, f] = 0.0
        wsum[f] = 0.0
        balloon[0, f] = 0.0
        for m in range(1, 4):
            balloon[m, f] = 1.0
    ls[L_SIM, b] = sim
    ls[L_T0, b] = t0
    ls[L_FREE, b] = -(-(t0 + nstep) // istep) * istep
    ls[L_NW, b] = 0
    bad[b] = False
    nsub[b] = 0


@nb.njit(cache=True, error_model="numpy")
def finish(b, s, diverged, istep, ls, nsub, status, steps, nsub_out):
    """Lane b's simulation ends at global step s: its status, steps and sub-steps go to its slot of the
    call's outputs; the lane is idle until the next multiple of istep (at once after a sample)."""
    sim = ls[L_SIM, b]
    if diverged:
        status[sim] = STATUS_DIVERGED
    ls[L_FREE, b] = -(-s // istep) * istep
    steps[sim] = s - ls[L_T0, b]
    nsub_out[sim] = nsub[b]
    ls[L_SIM, b] = -1


@nb.njit(cache=True, error_model="numpy")
def block_len(ls, s, K, nstep, pending):
    """Steps of the next time block from global step s: at most K, up to the end of the longest-running
    simulation, and, while simulations are pending, up to the step at which a lane takes one (so that
    its history is installed between blocks).  0: no simulation left."""
    end = -1
    cut = K
    for b in range(ls.shape[1]):
        if ls[L_SIM, b] >= 0:
            end = max(end, ls[L_T0, b] + nstep)
        if pending and (ls[L_SIM, b] >= 0 or ls[L_FREE, b] > s):
            end = max(end, ls[L_FREE, b])
            cut = min(cut, ls[L_FREE, b] - s)
    return min(cut, end - s) if end > s else 0


@nb.njit(cache=True, error_model="numpy")
def record_raw(s, x, lane, ls, rec_raw):
    """record="raw": the state after global step s, at each running simulation's own step."""
    if rec_raw.shape[1] == 0:
        return
    nb_ = ls.shape[1]
    for f in range(x.shape[1]):
        sim = ls[L_SIM, lane[f]]
        if sim >= 0:
            rec_raw[sim, s - ls[L_T0, lane[f]] - 1, 0, f // nb_] = x[0, f]
            rec_raw[sim, s - ls[L_T0, lane[f]] - 1, 1, f // nb_] = x[1, f]


@nb.njit(cache=True, error_model="numpy")
def complete(s, x, ls, nsub, nstep, istep, status, steps, nsub_out):
    """After global step s (and its sample): the simulations that reached nstep end; a non-finite final
    state is a divergence."""
    nb_ = ls.shape[1]
    for b in range(nb_):
        if ls[L_SIM, b] >= 0 and s - ls[L_T0, b] == nstep:
            finite = True
            for i in range(x.shape[1] // nb_):
                finite &= np.isfinite(x[0, i * nb_ + b]) and np.isfinite(x[1, i * nb_ + b])
            finish(b, s, not finite, istep, ls, nsub, status, steps, nsub_out)


@nb.njit(cache=True, error_model="numpy")
def check_lanes(s, istep, ls, bad, nsub, status, steps, nsub_out):
    """After a sample at step s: a running simulation whose averages or BOLD stopped being finite ends as
    diverged.  Returns whether one did (its lane is free for a pending simulation)."""
    freed = False
    for b in range(ls.shape[1]):
        if ls[L_SIM, b] >= 0 and bad[b]:
            finish(b, s, True, istep, ls, nsub, status, steps, nsub_out)
            freed = True
    return freed


@nb.njit(cache=True, error_model="numpy", fastmath=FMA)
def sample_lanes(s, istep, tsum, tmean, lane, ls, bad, rec_tavg, balloon, btmp, wsum, bold_dt, bold_every,
                 bold_first, hemo_j0, warm_n, bold_out):
    """The temporal-average sample ending at global step s (a multiple of istep): for each lane its own
    sample j = (s - t0) / istep - 1, the Balloon step it drives, its BOLD sample when one is due, and the
    lanes that stopped being finite (bad).  The Balloon step runs on every lane (one vector loop); a lane
    before its Balloon start (j <= hemo_j0) is then put back to rest, or to its steady start at hemo_j0."""
    wide_vectors()
    nflat = tsum.shape[1]
    nb_ = ls.shape[1]
    n_nonfinite = 0
    for f in range(nflat):
        tmean[0, f] = tsum[0, f] / istep
        tmean[1, f] = tsum[1, f] / istep
        tsum[0, f] = 0.0
        tsum[1, f] = 0.0
        n_nonfinite += not (np.isfinite(tmean[0, f]) and np.isfinite(tmean[1, f]))
    if n_nonfinite > 0:                      # rare: find the lanes
        for f in range(nflat):
            if not (np.isfinite(tmean[0, f]) and np.isfinite(tmean[1, f])):
                bad[lane[f]] = True
    balloon_step2(balloon, tmean[0], bold_dt, btmp)      # TVB: input sample j drives step j-1 -> j
    for b in range(nb_):
        sim = ls[L_SIM, b]
        if sim < 0:
            continue
        j = (s - ls[L_T0, b]) // istep - 1
        if rec_tavg.shape[1] > 0:
            for f in range(b, nflat, nb_):
                rec_tavg[sim, j, 0, f // nb_] = tmean[0, f]
                rec_tavg[sim, j, 1, f // nb_] = tmean[1, f]
        if j <= hemo_j0:
            _balloon_start(j, b, nb_, balloon, tmean, wsum, hemo_j0, warm_n)
        nw = ls[L_NW, b]
        if j >= bold_first and (j - bold_first) % bold_every == 0 and nw < bold_out.shape[1]:
            for f in range(b, nflat, nb_):
                y = bold_signal(balloon, f)
                if not np.isfinite(y):
                    bad[b] = True
                bold_out[sim, nw, f // nb_] = np.float32(y)
            ls[L_NW, b] = nw + 1


@nb.njit(cache=True, error_model="numpy", fastmath=FMA)
def _balloon_start(j, b, nb_, balloon, tmean, wsum, hemo_j0, warm_n):
    """Lane b at sample j <= hemo_j0: the Balloon has not started. Its state is the resting one, except at
    j = hemo_j0 with a warm-up window (warm_n > 0): the steady state of the window's mean r."""
    wide_vectors()
    nflat = wsum.size
    if j > hemo_j0 - warm_n:
        for f in range(b, nflat, nb_):
            wsum[f] += tmean[0, f]
    for f in range(b, nflat, nb_):
        if j == hemo_j0 and warm_n > 0:
            balloon_steady(balloon, f, wsum[f] / warm_n)
        else:
            balloon[0, f] = 0.0
            balloon[1, f] = 1.0
            balloon[2, f] = 1.0
            balloon[3, f] = 1.0
