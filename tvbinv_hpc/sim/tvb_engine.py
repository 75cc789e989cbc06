"""TVBEngine: any TVB Simulator template, simulated by TVB's own simulator behind the Engine interface.

The numba Engine does MontbrioPazoRoxin + Linear coupling + Heun with additive noise.  The compat API runs
every other template (another model, coupling, integrator or noise, or a parameter the numba engine does
not read, such as MPR's Gamma) here, through the same driver, store, restart and MPI code.  Per row:

- a deep copy of the template gets the row's values set as ``SimSeq[i]`` sets them (``attr = array``);
- seeding: ``integrator.noise.noise_seed`` is a 32-bit word of ``SeedSequence([seed, i])`` and the noise
  stream is reset, so TVB draws both the random initial history (``model.initial`` reads the noise stream)
  and the noise from (seed, i) only.  A deterministic integrator draws its history from numpy's global
  RNG, which is seeded with the same word for the configure and restored after it.  So batch size, rank
  and restarts never change a row, as with the numba engine (its streams differ: the bits differ);
- the neural signal is the first variable of interest (of the template's TemporalAverage monitor if that
  names one, else of the model: r for MPR, S for ReducedWongWang, V for Generic2dOscillator), mean over
  modes, averaged over ``tavg_period`` (steps j*istep+1 .. (j+1)*istep, as TVB's TemporalAverage);
- BOLD: the numba engine's Balloon-Windkessel (bold.py, started at the steady state of the first average),
  sampled every ``bold_tr`` ms from ``bold_transient`` on: the same grid as the numba engine's, so the
  metrics are computed alike.  The template's own monitors are not run.  The Balloon wants a non-negative
  activity (a rate, a gating variable); a membrane potential that goes negative can make it non-finite;
- a non-finite average or BOLD marks the row diverged (STATUS_DIVERGED, BOLD NaN).

TVB's simulator is Python/numpy: each rank simulates its rows one after the other (``threads`` is always
1); parallelism comes from MPI ranks.  For MPR it is ~100x slower than the numba engine (README).
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from typing import Any

import numba as nb
import numpy as np

from tvbinv_hpc.errors import ConfigError, UnsupportedError
from tvbinv_hpc.sim.bold import SETTLE_S, balloon_steady, balloon_step2, bold_signal
from tvbinv_hpc.sim.engine import SimResult, time_grid
from tvbinv_hpc.sim.mpr import STATUS_DIVERGED, STATUS_OK

KIND = "tvb"


def row_seed(seed: int, index: int) -> int:
    """The 32-bit noise_seed of simulation ``index`` (numpy's RandomState takes < 2**32)."""
    return int(np.random.SeedSequence([int(seed) % 2**64, int(index)]).generate_state(1)[0])


def tvb_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tvb-library {version('tvb-library')}"
    except PackageNotFoundError:  # pragma: no cover - a source checkout of TVB
        return "tvb-library (unknown version)"


def get_attr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def set_attr(obj: Any, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    set_on = get_attr(obj, ".".join(path)) if path else obj
    setattr(set_on, last, value)


@nb.njit(cache=True, error_model="numpy")
def balloon_series(x: np.ndarray, bold_dt: float, first: int, every: int, n_bold: int) -> np.ndarray:
    """BOLD (n_bold, N) of the averages x (n_tavg, N): the numba engine's Balloon with bold_start 'steady'
    and no warm-up (steady state of sample 0; sample j drives step j-1 -> j; samples first, first+every...)."""
    nt, n = x.shape
    state = np.empty((4, n))
    tmp = np.empty((8, n))
    for k in range(n):
        balloon_steady(state, k, x[0, k])
    y = np.full((n_bold, n), np.nan)
    w = 0
    for j in range(nt):
        if j > 0:
            balloon_step2(state, x[j], bold_dt, tmp)
        if j >= first and (j - first) % every == 0 and w < n_bold:
            for k in range(n):
                y[w, k] = bold_signal(state, k)
            w += 1
    return y


class TVBEngine:
    """One TVB Simulator template, simulated row by row by TVB; the numba Engine's interface."""

    kind = KIND
    lanes = 1

    def __init__(self, sim: Any, *, seed: int, ms_per_unit: float = 1.0, tavg_period: float | None = None,
                 bold_tr: float = 2000.0, bold_transient: float | None = 0.0):
        from tvb.simulator import monitors

        if getattr(sim, "surface", None) is not None:
            raise UnsupportedError("surface", "TVB simulator setting 'surface' is not supported: surface "
                                              "simulations (BOLD is made per region)")
        if not ms_per_unit > 0:
            raise ConfigError("simulation.ms_per_unit", f"must be > 0, got {ms_per_unit}")
        try:
            self.template = copy.deepcopy(sim)
        except Exception:  # noqa: BLE001 - as SimSeq[i]: some templates deep-copy only once configured
            sim.configure()
            self.template = copy.deepcopy(sim)
        self.seed = int(seed)
        self.ms_per_unit = float(ms_per_unit)
        self.dt = float(sim.integrator.dt)
        if not self.dt > 0:
            raise ConfigError("integrator.dt", f"must be > 0, got {self.dt}")
        self.nstep = int(math.ceil(float(sim.simulation_length) / self.dt))   # as Simulator.__call__
        self.n_regions = int(np.asarray(sim.connectivity.weights).shape[0])
        self.stochastic = hasattr(sim.integrator, "noise")
        avg = [m for m in sim.monitors if isinstance(m, monitors.TemporalAverage)]
        if tavg_period is None and avg:
            tavg_period = float(avg[0].period)
        self._set_grid(self.dt if tavg_period is None else float(tavg_period), float(bold_tr), bold_transient)
        self.voi, self.voi_name = _voi(sim, avg)
        self.unused_monitors = [type(m).__name__ for m in sim.monitors
                                if not isinstance(m, monitors.TemporalAverage)]
        self._threads = 1

    def _set_grid(self, period: float, bold_tr: float, bold_transient: float | None) -> None:
        """The numba Engine's time grid: temporal averages, BOLD samples (the same arithmetic)."""
        self.istep, every = time_grid(self.dt, period, self.ms_per_unit, bold_tr)
        self.tavg_period = self.istep * self.dt
        self.n_tavg = self.nstep // self.istep
        tavg_ms = self.tavg_period * self.ms_per_unit
        self.tr_ms, self.bold_every = every * tavg_ms, every
        if bold_transient is None:   # "auto": the Balloon's settling time (there is no neural warm-up here)
            bold_transient = SETTLE_S * 1000.0
        if bold_transient < 0:
            raise ConfigError("bold.transient", f"must be >= 0, got {bold_transient}")
        self.bold_transient_ms = float(bold_transient)
        self.bold_first = int(math.ceil(bold_transient / self.tr_ms - 1e-9)) * every
        self.n_bold = len(range(self.bold_first, self.n_tavg, every))
        self.bold_dt_s = tavg_ms / 1000.0

    # ---- the Engine interface the driver reads ------------------------------------------------------------
    @property
    def threads(self) -> int:
        """Always 1: TVB's simulator runs one row at a time (more cores: more MPI ranks)."""
        return self._threads

    @threads.setter
    def threads(self, setting: int | str | None) -> None:
        self.requested_threads = setting   # accepted for the driver and n_jobs, and unused

    def rows_per_batch(self, batch_size: int) -> int:
        return int(batch_size)

    @property
    def bold_times_ms(self) -> np.ndarray:
        return np.arange(self.bold_first, self.n_tavg, self.bold_every) * self.tavg_period * self.ms_per_unit

    def describe(self) -> dict[str, Any]:
        """What identifies this engine's numbers in a store view."""
        return {"simulator": KIND, "tvb": tvb_version(), "bold_input": self.voi_name,
                "row_seed": "SeedSequence([seed, i]) -> noise_seed"}

    # ---- simulation -----------------------------------------------------------------------------------------
    def configured(self, row: Mapping[str, Any], index: int) -> Any:
        """A configured copy of the template with one row's values, seeded from (seed, index)."""
        from tvb.simulator import monitors

        sim = copy.deepcopy(self.template)
        for attr, v in row.items():   # as SimSeq[i] sets them
            set_attr(sim, attr, np.atleast_1d(np.asarray(v, dtype=np.float64)).copy())
        sim.monitors = [monitors.RawVoi(variables_of_interest=np.r_[self.voi])]
        word = row_seed(self.seed, index)
        if self.stochastic:
            sim.integrator.noise.noise_seed = word
            sim.integrator.noise.reset_random_stream()
            sim.configure()
            return sim
        state = np.random.get_state()  # noqa: NPY002 - TVB draws a deterministic run's history from it
        try:
            np.random.seed(word)  # noqa: NPY002
            sim.configure()
        finally:
            np.random.set_state(state)  # noqa: NPY002
        return sim

    def _averages(self, sim: Any, nstep: int) -> tuple[np.ndarray | None, int]:
        """Temporal averages (n_tavg, N) of the signal, or None once one is not finite; steps run."""
        n_tavg = nstep // self.istep
        out = np.empty((n_tavg, self.n_regions))
        acc = np.zeros(self.n_regions)
        k = j = steps = 0
        with np.errstate(all="ignore"):
            for ((_, x),) in sim(n_steps=nstep):
                steps += 1
                acc += x[0].mean(axis=-1)   # (1 voi, N, modes) -> (N,)
                k += 1
                if k == self.istep:
                    out[j] = acc / self.istep
                    if not np.isfinite(out[j]).all():
                        return None, steps      # diverged: the rest would be NaN too
                    acc[:] = 0.0
                    k, j = 0, j + 1
                    if j == n_tavg:
                        break
        return out, steps

    def simulate(self, values: Mapping[str, np.ndarray], index: np.ndarray) -> SimResult:
        """B rows: values[key] (B,) or (B, width) set on the template's attribute ``key``; index (B,)."""
        index = np.asarray(index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"index must be a 1-d integer array, got {index.dtype} {index.shape}")
        nsim, n = index.size, self.n_regions
        cols = {}
        for key, v in values.items():
            try:
                get_attr(self.template, key)
            except AttributeError:
                raise ValueError(f"{key!r} is not an attribute of the TVB template") from None
            a = np.asarray(v, dtype=np.float64)
            if a.shape[:1] != (nsim,):
                raise ValueError(f"{key}: shape {a.shape}, expected ({nsim}, ...)")
            cols[key] = a
        out = SimResult(np.full((nsim, self.n_bold, n), np.nan, np.float32), np.full(nsim, STATUS_OK, np.int8),
                        np.zeros(nsim, np.int64), np.zeros(nsim, np.int64))
        for b in range(nsim):
            sim = self.configured({k: a[b] for k, a in cols.items()}, int(index[b]))
            x, out.steps[b] = self._averages(sim, self.nstep)
            bold = None if x is None else balloon_series(x, self.bold_dt_s, self.bold_first, self.bold_every,
                                                         self.n_bold).astype(np.float32)
            if bold is None or not np.isfinite(bold).all():
                out.status[b] = STATUS_DIVERGED
            else:
                out.bold[b] = bold
        return out

    def seconds_per_simulation(self, probe_steps: int = 400) -> float:
        """Wall seconds one row takes here, from a short probe run (configure + probe_steps steps)."""
        t0 = time.perf_counter()
        sim = self.configured({}, 0)
        t1 = time.perf_counter()
        steps = max(self.istep, min(self.nstep, int(probe_steps)))
        self._averages(sim, steps)
        t2 = time.perf_counter()
        return (t1 - t0) + (t2 - t1) * self.nstep / steps


def _voi(sim: Any, avg: list[Any]) -> tuple[int, str]:
    """The variable of interest that drives the Balloon: the TemporalAverage monitor's first one if it
    names any, else the model's first."""
    names = [str(v) for v in sim.model.variables_of_interest]
    idx = 0
    for m in avg:
        v = getattr(m, "variables_of_interest", None)
        if v is not None and np.size(v):
            idx = int(np.asarray(v).reshape(-1)[0])
            break
    if not 0 <= idx < len(names):
        raise ConfigError("monitors", f"variables_of_interest index {idx} is outside the model's "
                                      f"variables of interest {names}")
    return idx, names[idx]
