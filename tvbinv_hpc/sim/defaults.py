"""Defaults of the simulator's config sections: ``DEFAULTS[section][key] = (value, one-line doc)``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The engine's numerics: bumped whenever the same config gives other bits, so that a restart never mixes rows
# of two versions (part of every store's identity).  2: delayed edges summed in levels by delay, fused
# multiply-adds in the Heun step, the Balloon model and the coupling sums.  3: the fast Heun step with its
# per-simulation constants folded (params.P_F_*), fused multiply-adds in Box-Muller.
NUMERICS = 3

DEFAULTS: dict[str, dict[str, tuple[Any, str]]] = {
    "connectome": {
        "source": ("connectivity_76", "tvb-data name (connectivity_66/68/76/96/192), TVB .zip/.h5 path, "
                                      ".npz with 'weights', 'tract_lengths' (optional 'region_labels'), or a "
                                      "weights matrix in .mat/.csv/.tsv/.txt/.npy (rows = targets) with "
                                      "connectome.lengths; a list of files: a group connectome (mean weights, "
                                      "mean non-zero lengths); relative paths: from the config file's folder"),
        "weights_variable": ("", "variable of the weights in a .mat/.npz source (empty: the only 2-D one, or "
                                 "one named sc, weights, ...)"),
        "lengths": ("", "tract lengths (mm) when the source is a weights matrix: a .mat/.csv/.tsv/.txt/.npy "
                        "file of the same shape (a list, one per file, for a group connectome)"),
        "lengths_variable": ("", "variable of the lengths in a .mat/.npz file (empty: the only 2-D one)"),
        "labels": ("", "region labels, one per line (text file; empty: from the source, if it has them)"),
        "drop": ([], "0-based indices of the source's regions to leave out (e.g. subcortical ones); an "
                     "observation's BOLD with the source's region count is cut the same way"),
        "keep": ([], "0-based indices of the source's regions to keep (instead of drop)"),
        "symmetrize": ("none", "'none' | 'mean' ((W + W^T) / 2) | 'max'; tract lengths are averaged with "
                               "their transpose unless 'none' (tractography counts are not symmetric)"),
        "speed": (3.0, "axonal conduction speed in m/s (= mm/ms), physical whatever ms_per_unit is; delay "
                       "steps = rint(tract_length / speed / (dt * ms_per_unit)); warned outside 1-20 m/s"),
        "normalize": ("max", "'none' | 'max' (weights / max|w|) | 'log1p' (log(1 + w) / its max) | 'sqrt' "
                             "(sqrt(w) / its max): the last two compress fibre counts, which span orders "
                             "of magnitude"),
        "zero_diagonal": (False, "set self-connections to 0 (before normalising)"),
        "threshold": (0.0, "weights below this fraction of the largest become 0 (after normalising); the "
                           "log reports how many remain: fewer connections, cheaper steps"),
        "homotopic": (0.0, "weight added to every homotopic pair (both directions; pairs from "
                           "connectome.hemispheres), in units of the normalised weights (after normalise and "
                           "threshold); 0 = none. Tractography misses most callosal fibres, so DTI connectomes "
                           "underweight the pairs whose FC is strongest in resting-state data"),
        "hemispheres": ("auto", "homotopic pairing for the features and connectome.homotopic: 'auto' "
                                "(hemisphere markers in the region labels, else mirrored centres; an error asks "
                                "when neither tells), "
                                "'halves' (i with i + N/2), 'interleaved' (2k left with 2k + 1 right) or "
                                "{left = [...], right = [...]} (indices after drop/keep)"),
    },
    # [model] defaults: tvb-inversion's MPR example (eta -4.6, J 14.5, Delta 0.7), a bistable working point
    # near the down state; TVB's own MontbrioPazoRoxin() defaults are eta -5, J 15, Delta 1, tau 1, I 0,
    # cr 1, cv 0.
    "model": {
        "tau": (1.0, "MPR time constant tau; a float or a list of N floats"),
        "I": (0.0, "MPR external current I; float or N floats"),
        "Delta": (0.7, "MPR heterogeneity Delta; float or N floats (tvb-inversion's value; TVB's default 1)"),
        "J": (14.5, "MPR synaptic weight J; float or N floats (tvb-inversion's value; TVB's default 15)"),
        "eta": (-4.6, "MPR mean excitability eta; float or N floats (tvb-inversion's value; TVB's "
                      "default -5)"),
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
        "scheme": ("adaptive", "'adaptive': TVB's stochastic Heun step, and Heun sub-steps for a node whose "
                               "local rate 2 max(|V|, pi r) / tau times dt exceeds 0.6 (where the explicit "
                               "step runs away); 'fixed': TVB's step everywhere (diverges where TVB does)"),
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
        "start": ("steady", "'steady': the Balloon model starts after bold.warmup at the steady state of the "
                            "mean r over the warm-up's last half (no shared start-up rise); 'rest': at rest "
                            "at t = 0 as TVB's BalloonModel"),
        "warmup": (2000.0, "ms of neural time before the Balloon model starts ('steady' only)"),
        "transient": ("auto", "ms of BOLD dropped from the start (t = 0); 'auto': bold.warmup + 5 x the "
                              "Balloon's slowest time constant (2 tau_s = 3.08 s), rounded up to a TR"),
    },
}


def section(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Section ``name`` of a config dict with the defaults filled in."""
    given = dict(cfg.get(name, {}) or {})
    return {key: given.get(key, default) for key, (default, _doc) in DEFAULTS[name].items()}
