"""Defaults of the simulator's config sections: ``DEFAULTS[section][key] = (value, one-line doc)``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, dict[str, tuple[Any, str]]] = {
    "connectome": {
        "source": ("connectivity_76", "tvb-data name (connectivity_66/68/76/96/192), TVB .zip/.h5 path, "
                                      "or .npz with 'weights', 'tract_lengths' (optional 'region_labels')"),
        "speed": (3.0, "conduction speed in mm/ms; delays = rint(tract_length / speed / dt) steps"),
        "normalize": ("max", "'none' | 'max' (weights / max|w|)"),
        "zero_diagonal": (False, "set self-connections to 0 (before normalising)"),
    },
    "model": {
        "tau": (1.0, "MPR time constant tau; a float or a list of N floats"),
        "I": (0.0, "MPR external current I; float or N floats"),
        "Delta": (0.7, "MPR heterogeneity Delta; float or N floats"),
        "J": (14.5, "MPR synaptic weight J; float or N floats"),
        "eta": (-4.6, "MPR mean excitability eta; float or N floats"),
        "cr": (1.0, "weight of the coupling through r; float or N floats"),
        "cv": (0.0, "weight of the coupling through V (0 skips that sum); float or N floats"),
    },
    "coupling": {
        "a": (0.5, "Linear coupling scale a (global coupling G); float or N floats"),
        "b": (0.0, "Linear coupling offset b; float or N floats"),
    },
    "integrator": {
        "dt": (0.01, "HeunStochastic time step, model time units"),
        "nsig": ([0.035, 0.07], "additive noise: a float (both variables) or [nsig_r, nsig_V]; "
                                "noise = sqrt(2 nsig dt) z"),
    },
    "simulation": {
        "length": (30000.0, "simulated time, model time units (nstep = ceil(length / dt), as TVB)"),
        "ms_per_unit": (10.0, "1 model time unit = this many ms (clock of the BOLD model; TVB uses 1, "
                              "tvb-inversion's MPR 10)"),
        "initial_history": ("random", "'random' (uniform in r [0, 2], V [-2, 1.5], per simulation from "
                                      "seed and index) or a .npy of shape (>= horizon, 2, N), oldest "
                                      "first, or (2, N)"),
    },
    "bold": {
        "tavg_period": (0.1, "model time units; temporal average of r feeding the Balloon model"),
        "tr": (2000.0, "ms, BOLD sampling period (a multiple of tavg_period * ms_per_unit)"),
        "transient": (0.0, "ms of BOLD dropped from the start (sample 0 is the resting state, y = 0)"),
    },
}


def section(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Section ``name`` of a config dict with the defaults filled in."""
    given = dict(cfg.get(name, {}) or {})
    return {key: given.get(key, default) for key, (default, _doc) in DEFAULTS[name].items()}
