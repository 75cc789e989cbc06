"""The two ways in: a config dict (sections of defaults.py) or a TVB ``Simulator``; both end in the same
Engine(...) call, so the same setup gives bit-identical results."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from tvbinv_hpc.errors import ConfigError, InputError, UnsupportedError
from tvbinv_hpc.sim import params
from tvbinv_hpc.sim.connectome import Connectome, load_connectome
from tvbinv_hpc.sim.defaults import section


def _float(sec: str, key: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{sec}.{key}", f"must be a number, got {value!r}") from None


def engine_from_config(cls, cfg: Mapping[str, Any], seed: int):
    c, m = section(cfg, "connectome"), section(cfg, "model")
    cp, it = section(cfg, "coupling"), section(cfg, "integrator")
    sim, bold = section(cfg, "simulation"), section(cfg, "bold")
    options = {k: c[k] for k in ("weights_variable", "lengths", "lengths_variable", "labels", "drop", "keep",
                                 "symmetrize", "threshold", "hemispheres", "homotopic")}
    conn = load_connectome(c["source"], _float("connectome", "speed", c["speed"]), c["normalize"],
                           bool(c["zero_diagonal"]), **options)
    fixed = {f"model.{k}": m[k] for k in params.MODEL_KEYS}
    fixed.update({"coupling.a": cp["a"], "coupling.b": cp["b"], params.NSIG: it["nsig"]})
    for key, value in fixed.items():
        cfg_key = "integrator.nsig" if key == params.NSIG else key
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(cfg_key, f"must be a number or a list of numbers, got {value!r}") from None
        if not np.all(np.isfinite(arr)):
            raise ConfigError(cfg_key, "must be finite")
    history = None
    ih = sim["initial_history"]
    if ih != "random":
        path = os.path.expanduser(str(ih))
        if not os.path.isfile(path):
            raise InputError(f"simulation.initial_history: no such file '{path}'")
        try:
            history = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"simulation.initial_history: cannot read '{path}' as .npy: {exc}") from exc
    return cls(conn, dt=_float("integrator", "dt", it["dt"]),
               length=_float("simulation", "length", sim["length"]), fixed=fixed, seed=seed,
               ms_per_unit=_float("simulation", "ms_per_unit", sim["ms_per_unit"]),
               tavg_period=_float("bold", "tavg_period", bold["tavg_period"]),
               bold_tr=_float("bold", "tr", bold["tr"]),
               bold_transient=None if bold["transient"] == "auto" else _float("bold", "transient", bold["transient"]),
               initial_history=history, scheme=it["scheme"], bold_start=bold["start"],
               bold_warmup=_float("bold", "warmup", bold["warmup"]))


def _refuse(setting: str, why: str):
    raise UnsupportedError(setting, f"TVB simulator setting '{setting}' is not supported: {why}")


def engine_from_tvb(cls, sim, *, seed: int, ms_per_unit: float = 1.0, tavg_period: float | None = None,
                    bold_tr: float = 2000.0, bold_transient: float = 0.0, **kwargs):
    """Engine for a TVB Simulator: MontbrioPazoRoxin, Linear, HeunStochastic + Additive (or
    HeunDeterministic), region-level, no stimulus; Raw / TemporalAverage monitors (the latter sets
    tavg_period; without one and without ``tavg_period`` the average is over one step, so the Balloon model
    runs every step: slow).  TVB's ``initial_conditions`` (time-ordered, like TVB) are used when set, else a
    random history from the seed.  Extra kwargs go to Engine (history_dtype, lanes, tvb_order, scheme,
    bold_start, bold_warmup, ...).  Delays keep TVB's semantics, rint(length / speed / dt) with dt in model
    units, whatever ms_per_unit is (the speed of a TVB Simulator is in mm per model unit)."""
    from tvb.simulator import coupling, integrators, models, monitors, noise

    if type(sim.model) is not models.MontbrioPazoRoxin:
        _refuse("model", f"{type(sim.model).__name__} (only MontbrioPazoRoxin)")
    if type(sim.coupling) is not coupling.Linear:
        _refuse("coupling", f"{type(sim.coupling).__name__} (only Linear)")
    if getattr(sim, "surface", None) is not None:
        _refuse("surface", "surface simulations (region level only)")
    if getattr(sim, "stimulus", None) is not None:
        _refuse("stimulus", "stimuli")
    integ = sim.integrator
    if type(integ) is integrators.HeunStochastic:
        if type(integ.noise) is not noise.Additive:
            _refuse("integrator.noise", f"{type(integ.noise).__name__} (only Additive)")
        if float(np.max(integ.noise.ntau)) != 0.0:
            _refuse("integrator.noise.ntau", "coloured noise (ntau must be 0)")
        nsig = np.asarray(integ.noise.nsig, dtype=np.float64)
    elif type(integ) is integrators.HeunDeterministic:
        nsig = np.zeros(1)
    else:
        _refuse("integrator", f"{type(integ).__name__} (only HeunStochastic or HeunDeterministic)")
    for mon in sim.monitors:
        if type(mon) is monitors.TemporalAverage:
            tavg_period = float(mon.period) if tavg_period is None else tavg_period
        elif type(mon) is not monitors.Raw:
            _refuse("monitors", f"{type(mon).__name__} (only Raw and TemporalAverage; BOLD is computed by "
                                "the Balloon model from the temporal average, see bold_tr)")
    tvbconn = sim.connectivity
    speed = np.asarray(tvbconn.speed, dtype=np.float64).reshape(-1)
    if speed.size != 1:
        _refuse("connectivity.speed", "per-connection speeds")
    n = tvbconn.weights.shape[0]
    conn = Connectome(np.array(tvbconn.weights, dtype=np.float64),
                      np.array(tvbconn.tract_lengths, dtype=np.float64),
                      [str(s) for s in tvbconn.region_labels] if tvbconn.region_labels is not None
                      and len(tvbconn.region_labels) == n else [f"region_{i}" for i in range(n)],
                      speed=float(speed[0]))
    fixed = {}
    for k in params.MODEL_KEYS:
        fixed[f"model.{k}"] = _tvb_param(getattr(sim.model, k), n, f"model.{k}")
    fixed["coupling.a"] = _tvb_param(sim.coupling.a, n, "coupling.a")
    fixed["coupling.b"] = _tvb_param(sim.coupling.b, n, "coupling.b")
    nsig = nsig.reshape(-1) if nsig.size in (1, 2, n) else nsig.reshape(2, n)
    fixed[params.NSIG] = nsig[0] if nsig.size == 1 else nsig
    if "initial_history" not in kwargs and sim.initial_conditions is not None:
        kwargs["initial_history"] = sim.initial_conditions
    return cls(conn, dt=float(integ.dt), length=float(sim.simulation_length), fixed=fixed, seed=seed,
               ms_per_unit=ms_per_unit, tavg_period=tavg_period, bold_tr=bold_tr,
               bold_transient=bold_transient, tvb_delays=True, **kwargs)


def _tvb_param(value, n: int, name: str):
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size not in (1, n):
        _refuse(name, f"{a.size} values for {n} regions")
    return a[0] if a.size == 1 else a


def history_from_tvb(sim) -> np.ndarray:
    """A configured TVB Simulator's history buffer, time-ordered (horizon, 2, N), current state last."""
    buf = np.asarray(sim.history.buffer)[..., 0]
    horizon = buf.shape[0]
    times = sim.current_step - (horizon - 1) + np.arange(horizon)
    return buf[times % horizon].astype(np.float64)
