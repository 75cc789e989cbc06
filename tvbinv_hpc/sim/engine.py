"""The simulator facade: built from a config or a TVB Simulator; ``simulate(values, index)`` -> BOLD, status.

A result is a pure function of (engine setup, seed, values, index): a call's simulations run through
``lanes`` lanes as a queue (a lane whose simulation diverged or ended takes the next pending one, with its
own history, noise and BOLD state: lanes.py), and a simulation's noise and initial history come from
(seed, index) only, so batch size, position, rank and restarts never change it.

Threads: a call's simulations are split into one chunk per worker thread, each chunk run by the GIL-free
numba kernel with its own history ring and outputs; a row does not depend on which chunk, thread or lane
runs it, so any thread count gives the same bits.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from tvbinv_hpc.errors import ConfigError
from tvbinv_hpc.parallel.mpi import threads_per_rank
from tvbinv_hpc.sim import bold, mpr, params, rng
from tvbinv_hpc.sim.connectome import Connectome
from tvbinv_hpc.sim.mpr import STATUS_OK

R_RANGE = (0.0, 2.0)     # TVB's MontbrioPazoRoxin state_variable_range
V_RANGE = (-2.0, 1.5)
SCHEMES = ("adaptive", "fixed")
SPEED_RANGE = (1.0, 20.0)   # m/s, warned outside (myelinated cortico-cortical axons: ~3-10 m/s)
MAX_DELAY_MS = 200.0
BOLD_STARTS = ("steady", "rest")


@dataclass
class SimResult:
    bold: np.ndarray                  # float32 (B, n_bold, N); NaN where diverged
    status: np.ndarray                # int8 (B,), STATUS_OK or STATUS_DIVERGED
    steps: np.ndarray                 # int64 (B,), steps integrated (< nstep: diverged at that step)
    substeps: np.ndarray              # int64 (B,), node-steps the adaptive scheme took in sub-steps
    tavg: np.ndarray | None = None    # float64 (B, n_tavg, 2, N), r and V, when record="tavg"
    raw: np.ndarray | None = None     # float64 (B, nstep, 2, N), record="raw" (validation only: O(nstep))
    lane_steps: int = 0               # steps the kernel's lanes took in all (idle lanes included)


class Engine:
    """Batched MPR + BOLD simulator for one connectome and one fixed setup."""

    def __init__(self, conn: Connectome, *, dt: float, length: float, fixed: Mapping[str, Any], seed: int,
                 ms_per_unit: float = 1.0, tavg_period: float | None = None, bold_tr: float = 2000.0,
                 bold_transient: float | None = 0.0, initial_history: np.ndarray | None = None,
                 history_dtype: type = np.float32, lanes: int = 4, max_block: int = 128,
                 tvb_order: bool = False, scheme: str = "adaptive", bold_start: str = "steady",
                 bold_warmup: float = 0.0, tvb_delays: bool = False, threads: int | str = "auto",
                 exact: bool = False):
        if not dt > 0:
            raise ConfigError("integrator.dt", f"must be > 0, got {dt}")
        if not length > 0:
            raise ConfigError("simulation.length", f"must be > 0, got {length}")
        if not ms_per_unit > 0:
            raise ConfigError("simulation.ms_per_unit", f"must be > 0, got {ms_per_unit}")
        self.n_regions = n = conn.n_regions
        self.region_labels = list(conn.region_labels)
        self.connectome = conn
        self.seed = int(seed)
        self.dt = float(dt)
        self.nstep = int(math.ceil(length / dt))           # as TVB's Simulator.__call__
        self.ms_per_unit = float(ms_per_unit)
        # tvb_order: validation mode, TVB's float32 ring *and* its summation order (no time blocking: slow)
        self.tvb_order = bool(tvb_order)
        # exact: every operation rounded as TVB's numpy code does (no fused multiply-adds; validation)
        self.exact = bool(exact) or self.tvb_order
        self.history_dtype = np.float32 if tvb_order else np.dtype(history_dtype).type
        self.lanes = int(lanes)
        self.threads = threads
        self.fixed = {}
        for key in params.PARAMETERS:
            try:
                self.fixed[key] = params.as_fixed(key, fixed[key], n)
            except ValueError as exc:
                raise ConfigError(_config_key(key), str(exc)) from None
        if scheme not in SCHEMES:
            raise ConfigError("integrator.scheme", f"{scheme!r} is not one of {', '.join(SCHEMES)}")
        self.scheme = scheme
        # Physical delays: tract length (mm) / speed (m/s = mm/ms) in ms, then steps of dt * ms_per_unit ms.
        # tvb_delays: TVB's rint(length / speed / dt) with dt in model units (a TVB Simulator's semantics:
        # its speed is in mm per model unit, i.e. physically speed / ms_per_unit m/s).
        self.tvb_delays = bool(tvb_delays)
        self.idelays = conn.idelays(self.dt if self.tvb_delays else self.dt * self.ms_per_unit)
        self.topology = mpr.make_topology(conn.weights, self.idelays, self.history_dtype, max_block,
                                          self.tvb_order)
        self.horizon = self.topology.horizon
        period = self.dt if tavg_period is None else float(tavg_period)
        self.istep, self.bold_every = time_grid(self.dt, period, self.ms_per_unit, bold_tr)
        every = self.bold_every
        self.tavg_period = self.istep * self.dt
        self.n_tavg = self.nstep // self.istep
        tavg_ms = self.tavg_period * self.ms_per_unit
        self.tr_ms = every * tavg_ms
        self._set_bold_start(bold_start, bold_warmup, tavg_ms)
        if bold_transient is None:             # "auto": warm-up + the Balloon's settling time
            bold_transient = self.bold_warmup_ms + bold.SETTLE_S * 1000.0
        if bold_transient < 0:
            raise ConfigError("bold.transient", f"must be >= 0, got {bold_transient}")
        if bold_transient < self.bold_warmup_ms - 1e-9:
            raise ConfigError("bold.transient", f"{bold_transient} ms is shorter than the neural warm-up "
                                                f"bold.warmup = {self.bold_warmup_ms} ms (no BOLD exists yet)")
        self.bold_transient_ms = float(bold_transient)
        self.bold_first = int(math.ceil(bold_transient / self.tr_ms - 1e-9)) * every
        self.n_bold = len(range(self.bold_first, self.n_tavg, every))
        self.bold_dt_s = tavg_ms / 1000.0                          # Balloon step in seconds
        self.initial_history = None if initial_history is None else self._check_history(initial_history)

    def _set_bold_start(self, start: str, warmup: float, tavg_ms: float) -> None:
        """hemo_j0 / warm_n of the kernel: the Balloon starts at the steady state of the mean r over the
        last half of the warm-up (steady), or at rest at sample 0 (rest: TVB's BalloonModel)."""
        if start not in BOLD_STARTS:
            raise ConfigError("bold.start", f"{start!r} is not one of {', '.join(BOLD_STARTS)}")
        if not warmup >= 0:
            raise ConfigError("bold.warmup", f"must be >= 0, got {warmup}")
        self.bold_start = start
        if start == "rest":
            self.bold_warmup_ms, self.hemo_j0, self.warm_n = 0.0, 0, 0
            return
        self.hemo_j0 = int(round(warmup / tavg_ms))
        self.bold_warmup_ms = self.hemo_j0 * tavg_ms
        self.warm_n = max(1, (self.hemo_j0 + 1) // 2)

    @property
    def threads(self) -> int:
        """Worker threads that simulate the lane groups of one call (results never depend on it)."""
        return self._threads

    @threads.setter
    def threads(self, setting: int | str | None) -> None:
        try:
            self._threads = threads_per_rank(setting)
        except ValueError as exc:
            raise ConfigError("budget.threads", str(exc)) from None

    def rows_per_batch(self, batch_size: int) -> int:
        """Rows a driver should hand to one ``simulate`` call: ``batch_size`` on one thread, else rounded up
        to whole lane groups for every thread (a short batch would leave threads idle)."""
        per = self.lanes * self.threads if self.threads > 1 else 1
        return -(-int(batch_size) // per) * per

    # ---- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], seed: int) -> Engine:
        from tvbinv_hpc.sim.setup import engine_from_config
        return engine_from_config(cls, cfg, seed)

    @classmethod
    def from_tvb(cls, sim, *, seed: int, ms_per_unit: float = 1.0, tavg_period: float | None = None,
                 bold_tr: float = 2000.0, bold_transient: float = 0.0, **kwargs) -> Engine:
        from tvbinv_hpc.sim.setup import engine_from_tvb
        return engine_from_tvb(cls, sim, seed=seed, ms_per_unit=ms_per_unit, tavg_period=tavg_period,
                               bold_tr=bold_tr, bold_transient=bold_transient, **kwargs)

    # ---- physiology ---------------------------------------------------------------------------------------
    @property
    def speed_m_per_s(self) -> float:
        """The conduction speed physically (a TVB Simulator's speed is per model unit, see tvb_delays)."""
        return self.connectome.speed / (self.ms_per_unit if self.tvb_delays else 1.0)

    @property
    def max_delay_ms(self) -> float:
        """The longest conduction delay of a non-zero connection, in physical ms."""
        nz = self.connectome.weights != 0
        return float(self.idelays[nz].max(initial=0)) * self.dt * self.ms_per_unit

    def physiology_warnings(self) -> list[str]:
        """Settings outside physiology that are legal but probably not meant (logged, not refused)."""
        out = []
        v = self.speed_m_per_s
        if not SPEED_RANGE[0] <= v <= SPEED_RANGE[1]:
            out.append(f"connectome.speed = {v:g} m/s is outside the physiological {SPEED_RANGE[0]:g}-"
                       f"{SPEED_RANGE[1]:g} m/s of myelinated cortico-cortical fibres")
        if self.max_delay_ms > MAX_DELAY_MS:
            out.append(f"conduction delays reach {self.max_delay_ms:.0f} ms (> {MAX_DELAY_MS:.0f} ms): check "
                       "connectome.speed (m/s), the tract lengths (mm) and simulation.ms_per_unit")
        return out

    # ---- properties -----------------------------------------------------------------------------------
    @property
    def bold_times_ms(self) -> np.ndarray:
        """Time of each BOLD sample in ms (sample k of the Balloon series is at k * tavg period)."""
        idx = np.arange(self.bold_first, self.n_tavg, self.bold_every)
        return idx * self.tavg_period * self.ms_per_unit

    @property
    def tavg_times(self) -> np.ndarray:
        """Times of the temporal-average samples, model units ((j + 0.5) * period, as TVB)."""
        return (np.arange(self.n_tavg) + 0.5) * self.tavg_period

    def history_nbytes(self, lanes: int | None = None) -> int:
        """Bytes of the history ring of one lane group (what bounds the memory of a run)."""
        lanes = self.lanes if lanes is None else lanes
        return 2 * self.n_regions * (self.horizon + self.topology.block) * lanes * \
            np.dtype(self.history_dtype).itemsize

    # ---- initial history --------------------------------------------------------------------------------
    def _check_history(self, hist: np.ndarray) -> np.ndarray:
        h = np.asarray(hist, dtype=np.float64)
        n = self.n_regions
        if h.ndim == 4 and h.shape[-1] == 1:          # TVB's (time, svar, node, mode)
            h = h[..., 0]
        if h.shape == (2, n):
            h = np.broadcast_to(h, (self.horizon, 2, n))
        if h.ndim != 3 or h.shape[1:] != (2, n) or h.shape[0] < self.horizon:
            raise ConfigError("simulation.initial_history",
                              f"shape {np.shape(hist)}, expected (2, {n}) or (>= {self.horizon}, 2, {n})")
        h = np.array(h[-self.horizon:])
        h[:, 0] = np.maximum(h[:, 0], 0.0)             # TVB bounds r >= 0 on every slot
        return h

    def lane_history(self, k1: np.uint64, k2: np.uint64) -> np.ndarray:
        """Time-ordered initial history (horizon, 2, N) of one simulation (last = current state), as float64:
        the given one, or the random one the engine draws from the simulation's keys."""
        if self.initial_history is not None:
            return self.initial_history
        n, h = self.n_regions, self.horizon
        hist = np.zeros((2, n, h, 1))
        x = np.zeros((2, n, 1))
        rng.fill_random_history(hist, x, 0, k1, k2, h, h, R_RANGE[0], R_RANGE[1] - R_RANGE[0], V_RANGE[0],
                                V_RANGE[1] - V_RANGE[0], 0)
        times = np.arange(-(h - 1), 1) % h
        return hist[:, :, times, 0].transpose(2, 0, 1)

    # ---- simulation -------------------------------------------------------------------------------------
    def simulate(self, values: Mapping[str, np.ndarray], index: np.ndarray, *, record: str | None = None,
                 nstep: int | None = None) -> SimResult:
        """Simulate B parameter sets. values[key]: (B,) or (B, N) (nsig also (B, 2)); index: (B,) global
        simulation indices. record: None, "tavg" (r and V temporal averages) or "raw" (every step)."""
        index = np.asarray(index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"index must be a 1-d integer array, got {index.dtype} {index.shape}")
        if record not in (None, "tavg", "raw"):
            raise ValueError(f"record must be None, 'tavg' or 'raw', not {record!r}")
        nsim, n = index.size, self.n_regions
        nstep = self.nstep if nstep is None else int(nstep)
        n_tavg = nstep // self.istep
        n_bold = len(range(self.bold_first, n_tavg, self.bold_every))
        res = params.resolve(self.fixed, values, nsim, n)
        k1, k2 = rng.sim_keys(self.seed, index)
        out = SimResult(np.full((nsim, n_bold, n), np.nan, np.float32), np.full(nsim, STATUS_OK, np.int8),
                        np.zeros(nsim, np.int64), np.zeros(nsim, np.int64))
        if record == "tavg":
            out.tavg = np.full((nsim, n_tavg, 2, n), np.nan)
        if record == "raw":
            out.raw = np.full((nsim, nstep, 2, n), np.nan)
        chunks = self._chunks(nsim)

        def run(chunk: _Chunk) -> None:
            self._run_chunk(res, chunk, k1, k2, nstep, n_tavg, n_bold, out)

        if len(chunks) <= 1:
            for c in chunks:
                run(c)
        else:   # every chunk writes only its own rows of out
            with ThreadPoolExecutor(len(chunks), thread_name_prefix="tvbinv-sim") as pool:
                for _ in pool.map(run, chunks):
                    pass
        out.lane_steps = sum(c.lane_steps for c in chunks)
        return out

    def _chunks(self, nsim: int) -> list[_Chunk]:
        """The call's simulations split into one contiguous chunk per worker thread, each a whole number of
        lane groups but the last: a chunk is a queue that its lanes work through (lanes.py)."""
        groups = -(-nsim // self.lanes)
        if groups == 0:
            return []
        workers = min(self.threads, groups)
        per = -(-groups // workers) * self.lanes
        return [_Chunk(lo, min(lo + per, nsim)) for lo in range(0, nsim, per)]

    def _run_chunk(self, res, chunk: _Chunk, k1, k2, nstep, n_tavg, n_bold, out: SimResult) -> None:
        n, nb, top = self.n_regions, self.lanes, self.topology
        sims = np.arange(chunk.lo, chunk.hi)
        ring = self.horizon
        hist = np.zeros((2, n, (ring + top.block) * nb), self.history_dtype)
        table = params.lane_table(res, sims, self.dt)
        init = np.zeros((0, 2, n)) if self.initial_history is None else self.initial_history
        ranges = np.array([R_RANGE[0], R_RANGE[1] - R_RANGE[0], V_RANGE[0], V_RANGE[1] - V_RANGE[0]])
        lo, hi = chunk.lo, chunk.hi
        steps = mpr.run_lanes(
            top.lvl_k, top.lvl_ptr, top.far_src, top.far_w, top.far_d, top.loc_ptr, top.loc_src, top.loc_w,
            np.repeat(top.self_w, nb), top.block, ring, hist, np.zeros((2, n * nb)), table,
            np.ascontiguousarray(k1[sims]), np.ascontiguousarray(k2[sims]), init, ranges,
            self.dt, nstep, self.istep,
            bool(np.any(table[mpr.P_SIG_R] > 0) or np.any(table[mpr.P_SIG_V] > 0)),
            bool(np.any(table[mpr.P_CV] != 0)), self.tvb_order,
            self.bold_dt_s, self.bold_every, self.bold_first, out.bold[lo:hi], out.status[lo:hi],
            out.steps[lo:hi], out.substeps[lo:hi],
            out.tavg[lo:hi] if out.tavg is not None else np.zeros((hi - lo, 0, 2, n)),
            out.raw[lo:hi] if out.raw is not None else np.zeros((hi - lo, 0, 2, n)), (0,) * nb,
            mpr.H_MAX if self.scheme == "adaptive" else 0.0, self.hemo_j0, self.warm_n, self.exact)
        out.bold[lo:hi][out.status[lo:hi] != STATUS_OK] = np.nan
        chunk.lane_steps = int(steps) * nb


class _Chunk:
    """Simulations lo .. hi - 1 of a call, run by one kernel call; lane_steps: its lanes' steps (work done,
    including lanes that idle while others finish)."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi, self.lane_steps = lo, hi, 0


def time_grid(dt: float, tavg_period: float, ms_per_unit: float, bold_tr: float) -> tuple[int, int]:
    """(integration steps per temporal average, temporal averages per BOLD sample): TVB's
    iround(period / dt), and a TR that must be a whole number of averaging periods. Both engines use it."""
    istep = int(round(tavg_period / dt))
    if istep < 1:
        raise ConfigError("bold.tavg_period", f"{tavg_period} is shorter than dt {dt}")
    tavg_ms = istep * dt * ms_per_unit
    every = round(bold_tr / tavg_ms)
    if every < 1 or abs(every * tavg_ms - bold_tr) > 1e-6 * bold_tr:
        raise ConfigError("bold.tr", f"{bold_tr} ms is not a multiple of the temporal average period "
                                     f"{tavg_ms} ms (tavg_period * ms_per_unit)")
    return istep, every


def _config_key(key: str) -> str:
    return "integrator.nsig" if key == params.NSIG else key
