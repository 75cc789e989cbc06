"""Simulator engine: batched MPR network simulations with delays, noise, temporal average and Balloon BOLD.

``Engine.from_config(cfg, seed)`` or ``Engine.from_tvb(sim, seed=...)``, then
``engine.simulate(values, index) -> SimResult(bold, status, ...)``.
"""
from tvbinv_hpc.sim.engine import Engine, SimResult
from tvbinv_hpc.sim.mpr import STATUS_DIVERGED, STATUS_OK
from tvbinv_hpc.sim.params import PARAMETERS

__all__ = ["Engine", "SimResult", "PARAMETERS", "STATUS_OK", "STATUS_DIVERGED"]
