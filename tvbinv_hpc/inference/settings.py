"""The [train] and [diagnose] config sections: defaults, docs and validation.

Each table maps key -> (default, doc). ``validate_*`` fills defaults and raises
``ConfigError("train.<key>", ...)`` / ``ConfigError("diagnose.<key>", ...)`` on unknown keys,
wrong types or out-of-range values, so a job fails on rank 0 before any simulation runs.

A section is checked once, where it enters: ``validate_*`` returns a ``TrainSettings`` /
``DiagnoseSettings`` and passes one of those through unchanged, so the config's sections reach
``train_posterior`` and ``diagnose`` without a second check, while a plain dict from the Python API is
checked there. A copy (``dict(settings)``) is a plain dict again: change a section only through a copy.
"""
from __future__ import annotations

import math
import re
from typing import Any

from tvbinv_hpc.errors import ConfigError
from tvbinv_hpc.schema import Key, config_key

# Estimators sbi 0.27's posterior_nn accepts (nflows ones and zuko ones); zuko_* are maintained.
DENSITY_ESTIMATORS = (
    "maf", "nsf", "mdn", "made", "maf_rqs",
    "zuko_maf", "zuko_nsf", "zuko_nice", "zuko_naf", "zuko_unaf", "zuko_sospf", "zuko_gf", "zuko_bpf",
)
Z_SCORE_CHOICES = ("independent", "structured", "none")
Z_SCORE_X_CHOICES = ("robust",) + Z_SCORE_CHOICES
COVERAGE_CHOICES = ("expected", "tarp", "both", "none")

TRAIN_DEFAULTS: dict[str, tuple[Any, str]] = {
    "density_estimator": ("maf", "sbi density estimator: " + ", ".join(DENSITY_ESTIMATORS)),
    "hidden_features": (50, "hidden units per layer of the flow"),
    "num_transforms": (5, "number of flow transforms"),
    "num_bins": (10, "spline bins (nsf, maf_rqs, zuko_nsf)"),
    "num_components": (10, "mixture components (mdn)"),
    "ensemble": (1, "flows trained on the same rows with seeds seed, seed + 1, ...; the posterior is their "
                    "equal-weight mixture (wider where the members disagree: better calibrated on few rows)"),
    "z_score_theta": ("independent", "standardise theta: independent, structured or none"),
    "z_score_x": ("robust", "standardise x (features): robust ((x - median) / IQR, then asinh: heavy-tailed "
                            "features such as FCD fluidity keep their order without dominating), or sbi's "
                            "independent, structured or none"),
    "batch_size": (200, "training batch size"),
    "learning_rate": (5e-4, "Adam learning rate"),
    "validation_fraction": (0.1, "fraction of rows held out for early stopping"),
    "stop_after_epochs": (20, "stop when the validation loss has not improved for this many epochs"),
    "max_epochs": (1000, "upper bound on training epochs (0 = no bound)"),
    "clip_max_norm": (5.0, "gradient norm clipping (0 = off)"),
    "seed": (None, "torch seed for initialisation, split and batches (unset = the run seed)"),
    "threads": (0, "torch threads on rank 0 (0 = cores of this job on the node / ranks on the node)"),
    "device": ("cpu", "where the flow trains: cpu, cuda (cuda:N) or auto (cuda when torch sees a GPU); the "
                      "trained flow is moved to the CPU for saving, sampling and diagnostics"),
    "tensorboard": (False, "write TensorBoard logs into the output directory"),
}

DIAGNOSE_DEFAULTS: dict[str, tuple[Any, str]] = {
    "num_samples": (10000, "posterior samples drawn for the observation"),
    "sbc_rows": (200, "held-out test rows used for SBC, coverage, shrinkage and z-scores (0 = skip)"),
    "sbc_samples": (1000, "posterior samples per test row"),
    "coverage": ("expected", "calibration test: expected (HPD coverage), tarp, both or none"),
    "ppc_draws": (100, "posterior draws re-simulated for the predictive check (0 = skip)"),
    "plots": (True, "write PNG plots"),
    "max_sampling_time": (0.0, "seconds allowed per posterior sampling call (0 = no limit)"),
    "threads": (0, "torch threads on rank 0 (0 = cores of this job on the node / ranks on the node)"),
}

# The [observation] section of the config (validated by config.py; read by inference/observation.py).
OBSERVATION_SCHEMA: dict[str, Key] = {
    "source": config_key((str, list), "synthetic", "'synthetic' (simulate observation.theta with the same engine), "
                        "a path to empirical BOLD (.nc, .mat, .csv/.tsv/.txt, .npy), or a cohort: a list of "
                        "paths or a glob ('data/*/bold.mat'), each diagnosed with the one trained posterior. "
                        "Relative to the config file."),
    "subjects": config_key(list, [], "Names of a cohort's subjects, one per source file (default: the file's "
                          "folder name when files share a name, else the file name)."),
    "layout": config_key(str, "auto", "Axis order of matrix files: 'auto' (by the region count; .nc by dimension "
                        "names), 'time_region' or 'region_time'.", choices=("auto", "time_region", "region_time")),
    "tr": config_key(float, 0.0, "Sample period of the empirical BOLD in ms when the file does not carry it "
                    "(.npy, .mat, text); checked against bold.tr. 0: not stated."),
    "theta": config_key(dict, {}, "Synthetic ground truth: parameter name -> value (missing parameters: prior mean)."),
    "index": config_key(int, -1, "Simulation index seeding the synthetic observation's noise (-1: n_sims + 10**6)."),
    "variable": config_key(str, "", "Variable holding the BOLD in a .nc/.mat/.npz file (empty: the only 2-D one)."),
}



class TrainSettings(dict):
    """A [train] section as ``validate_train`` returned it: complete and checked."""


class DiagnoseSettings(dict):
    """A [diagnose] section as ``validate_diagnose`` returned it: complete and checked."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _fill(section: dict | None, defaults: dict, name: str) -> dict:
    section = dict(section or {})
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", f"unknown key; known keys: {', '.join(defaults)}")
    return {k: section.get(k, d) for k, (d, _doc) in defaults.items()}


def _int(out: dict, name: str, key: str, lo: int) -> None:
    v = out[key]
    if not _is_int(v) or v < lo:
        raise ConfigError(f"{name}.{key}", f"must be an integer >= {lo}, got {v!r}")


def _choice(out: dict, name: str, key: str, choices: tuple[str, ...]) -> None:
    if out[key] not in choices:
        raise ConfigError(f"{name}.{key}", f"must be one of {', '.join(choices)}; got {out[key]!r}")


def _bool(out: dict, name: str, key: str) -> None:
    if not isinstance(out[key], bool):
        raise ConfigError(f"{name}.{key}", f"must be true or false, got {out[key]!r}")


def validate_train(section: dict | None) -> TrainSettings:
    """The [train] section with defaults filled in.

    Parameters
    ----------
    section
        The user's keys (None or {} for every default); a ``TrainSettings`` is returned as it is.

    Returns
    -------
    TrainSettings
        Every key of ``TRAIN_DEFAULTS``; ``device`` resolved ('auto' -> 'cpu' or 'cuda').

    Raises
    ------
    ConfigError
        An unknown key, a wrong type or a value out of range, named ``train.<key>``.
    """
    if isinstance(section, TrainSettings):
        return section
    out = _fill(section, TRAIN_DEFAULTS, "train")
    _choice(out, "train", "density_estimator", DENSITY_ESTIMATORS)
    _choice(out, "train", "z_score_theta", Z_SCORE_CHOICES)
    _choice(out, "train", "z_score_x", Z_SCORE_X_CHOICES)
    for key, lo in (("hidden_features", 1), ("num_transforms", 1), ("num_bins", 1), ("num_components", 1),
                    ("batch_size", 1), ("stop_after_epochs", 1), ("max_epochs", 0), ("threads", 0),
                    ("ensemble", 1)):
        _int(out, "train", key, lo)
    lr = out["learning_rate"]
    if not _is_num(lr) or lr <= 0:
        raise ConfigError("train.learning_rate", f"must be a positive number, got {lr!r}")
    vf = out["validation_fraction"]
    if not _is_num(vf) or not 0 < vf < 0.5:
        raise ConfigError("train.validation_fraction", f"must be in (0, 0.5), got {vf!r}")
    cm = out["clip_max_norm"]
    if not _is_num(cm) or cm < 0:
        raise ConfigError("train.clip_max_norm", f"must be a number >= 0, got {cm!r}")
    out["learning_rate"], out["validation_fraction"], out["clip_max_norm"] = float(lr), float(vf), float(cm)
    if out["seed"] is not None:
        _int(out, "train", "seed", 0)
    _bool(out, "train", "tensorboard")
    out["device"] = _device(out["device"])
    return TrainSettings(out)


def _device(value: Any) -> str:
    """A torch device name this process can train on, decided before any simulation runs."""
    if not isinstance(value, str) or not re.fullmatch(r"cpu|auto|cuda(:\d+)?", value):
        raise ConfigError("train.device", f"must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {value!r}")
    if value == "cpu":
        return value
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if value == "auto":
        return "cuda" if gpus else "cpu"
    index = int(value.split(":")[1]) if ":" in value else 0
    if index >= gpus:
        raise ConfigError("train.device", f"{value!r} requested but torch {torch.__version__} sees "
                                          f"{gpus} CUDA device(s) on this node (a CPU-only torch build, or no GPU "
                                          "allotted to the job): use 'cpu' or 'auto'")
    return value


def validate_diagnose(section: dict | None) -> DiagnoseSettings:
    """The [diagnose] section with defaults filled in.

    Parameters
    ----------
    section
        The user's keys (None or {} for every default); a ``DiagnoseSettings`` is returned as it is.

    Returns
    -------
    DiagnoseSettings
        Every key of ``DIAGNOSE_DEFAULTS``.

    Raises
    ------
    ConfigError
        An unknown key, a wrong type or a value out of range, named ``diagnose.<key>``.
    """
    if isinstance(section, DiagnoseSettings):
        return section
    out = _fill(section, DIAGNOSE_DEFAULTS, "diagnose")
    _int(out, "diagnose", "num_samples", 10)
    _int(out, "diagnose", "sbc_rows", 0)
    _int(out, "diagnose", "sbc_samples", 10)
    _int(out, "diagnose", "ppc_draws", 0)
    _int(out, "diagnose", "threads", 0)
    if out["ppc_draws"] == 1:
        raise ConfigError("diagnose.ppc_draws", "must be 0 (skip) or >= 2 to estimate a spread")
    if out["ppc_draws"] > out["num_samples"]:
        raise ConfigError("diagnose.ppc_draws", f"must not exceed num_samples ({out['num_samples']}): "
                                                f"the draws are taken from the posterior samples")
    if out["sbc_rows"] and out["sbc_rows"] < 2:
        raise ConfigError("diagnose.sbc_rows", "must be 0 (skip) or >= 2")
    _choice(out, "diagnose", "coverage", COVERAGE_CHOICES)
    _bool(out, "diagnose", "plots")
    mst = out["max_sampling_time"]
    if not _is_num(mst) or mst < 0:
        raise ConfigError("diagnose.max_sampling_time", f"must be a number >= 0, got {mst!r}")
    out["max_sampling_time"] = float(mst)
    return DiagnoseSettings(out)
