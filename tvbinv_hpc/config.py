"""TOML run description -> validated config dict with every default filled in, plus a stable hash.

The schema below is the single source for validation and for the generated config reference (README).
Sections owned by other stages delegate to them: ``prior`` to tvbinv_hpc.prior, ``stats.features`` to
tvbinv_hpc.stats, ``train``/``diagnose`` to tvbinv_hpc.inference.
"""
from __future__ import annotations

import copy
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tvbinv_hpc.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FLOAT_OR_LIST = (float, list)


@dataclass(frozen=True)
class Key:
    types: tuple[type, ...]
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    positive: bool = False


def _k(types: Any, default: Any, doc: str, **kw: Any) -> Key:
    return Key(types if isinstance(types, tuple) else (types,), default, doc, **kw)


SCHEMA: dict[str, dict[str, Key]] = {
    "run": {
        "name": _k(str, "run", "Name of the run (used in logs and output metadata)."),
        "output": _k(str, "runs/{name}", "Output folder; '{name}' is replaced by run.name. "
                     "Relative to the config file."),
        "seed": _k(int, 42, "Root seed: prior draws, noise and initial history of simulation i derive from (seed, i)."),
        "progress": _k(str, "auto", "Progress display: auto (bar on a terminal, log lines otherwise), bar, log, none.",
                       choices=("auto", "bar", "log", "none")),
        "progress_interval": _k(float, 10.0, "Seconds between progress log lines.", positive=True),
    },
    "stats": {
        "burn_in": _k(float, 0.0, "Milliseconds of BOLD dropped before every feature."),
        "features": _k(list, None, "List of feature tables ([[stats.features]], name + parameters); "
                       "default: tvbinv_hpc.stats.DEFAULT_FEATURES."),
    },
    "budget": {
        "n_sims": _k(int, 1000, "Number of simulations (rows of the store).", positive=True),
        "test_fraction": _k(float, 0.1, "Fraction of rows held out from training for diagnostics (the last rows)."),
        "batch_size": _k(int, 4, "Simulations per kernel call (4-8 is fastest); changing it never changes results.",
                         positive=True),
    },
    "store": {
        "path": _k(str, "{output}/store.h5", "HDF5 store path; '{output}' is run.output."),
        "save_bold": _k(bool, False, "Also store every simulation's BOLD (float32, n x T x N)."),
        "writer": _k(str, "auto", "auto (parallel HDF5 when h5py has MPI), mpio, or root (rank 0 gathers and writes).",
                     choices=("auto", "mpio", "root")),
    },
    "observation": {
        "source": _k(str, "synthetic", "'synthetic' (simulate observation.theta with the same engine) or a path "
                     "to empirical BOLD (.nc with time x region, or .npy [T, N])."),
        "theta": _k(dict, {}, "Synthetic ground truth: parameter name -> value (missing parameters: prior mean)."),
        "index": _k(int, -1, "Simulation index seeding the synthetic observation's noise (-1: n_sims + 10**6)."),
        "variable": _k(str, "", "netCDF variable holding the BOLD (empty: the only 2-D variable)."),
    },
}


def _sim_sections() -> dict[str, dict[str, Key]]:
    """The simulator's sections, from its own defaults table (one source for values and docs)."""
    from tvbinv_hpc.sim.defaults import DEFAULTS

    extra: dict[str, dict[str, Any]] = {
        "connectome.normalize": {"choices": ("none", "max")},
        "integrator.scheme": {"choices": ("adaptive", "fixed")},
        "bold.start": {"choices": ("steady", "rest")},
    }
    out: dict[str, dict[str, Key]] = {}
    for section, keys in DEFAULTS.items():
        out[section] = {}
        for key, (default, doc) in keys.items():
            if isinstance(default, bool):
                types: tuple[type, ...] = (bool,)
            elif f"{section}.{key}" == "bold.transient":
                types = (float, str)           # a number of ms or "auto"
            elif f"{section}.{key}" in POSITIVE or f"{section}.{key}" == "bold.warmup":
                types = (float,)
            elif isinstance(default, (float, list)):
                types = FLOAT_OR_LIST
            else:
                types = (type(default),)
            positive = f"{section}.{key}" in POSITIVE
            out[section][key] = Key(types, default, doc, positive=positive, **extra.get(f"{section}.{key}", {}))
    return out


POSITIVE = {"connectome.speed", "integrator.dt", "simulation.length", "simulation.ms_per_unit",
            "bold.tavg_period", "bold.tr"}
SCHEMA = {**{k: v for k, v in SCHEMA.items() if k == "run"}, **_sim_sections(),
          **{k: v for k, v in SCHEMA.items() if k != "run"}}
# Sections whose change alters the rows of the store; anything else may change on restart.
STORE_SECTIONS = ("connectome", "model", "coupling", "integrator", "simulation", "bold", "stats", "prior")
STORE_KEYS = (("run", "seed"), ("budget", "n_sims"), ("budget", "test_fraction"), ("store", "save_bold"))
DELEGATED = ("prior", "train", "diagnose")


def _check_value(path: str, key: Key, value: Any) -> Any:
    if float in key.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in key.types:
        raise ConfigError(path, f"expected {_typename(key)}, got a boolean")
    if not isinstance(value, key.types):
        raise ConfigError(path, f"expected {_typename(key)}, got {type(value).__name__} {value!r}")
    if isinstance(value, list) and key.types == FLOAT_OR_LIST:
        if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(path, "expected a number or a non-empty list of numbers")
        value = [float(v) for v in value]
    if key.choices is not None and value not in key.choices:
        raise ConfigError(path, f"{value!r} is not one of {', '.join(map(repr, key.choices))}")
    if key.positive and not value > 0:
        raise ConfigError(path, f"must be > 0, got {value!r}")
    return value


def _typename(key: Key) -> str:
    names = {float: "a number", int: "an integer", str: "a string", bool: "true/false", list: "a list",
             dict: "a table"}
    return " or ".join(names[t] for t in key.types)


def validate(raw: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Check types, unknown keys and values; return the effective config with every default filled in."""
    from tvbinv_hpc import prior as prior_mod
    from tvbinv_hpc.inference import validate_diagnose, validate_train

    if not isinstance(raw, dict):
        raise ConfigError("", "the config must be a TOML table")
    allowed = set(SCHEMA) | set(DELEGATED)
    for name in raw:
        if name not in allowed:
            raise ConfigError(name, f"unknown section (known: {', '.join(sorted(allowed))})")
    cfg: dict[str, Any] = {}
    for name, keys in SCHEMA.items():
        section = raw.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(name, "expected a table")
        for k in section:
            if k not in keys:
                raise ConfigError(f"{name}.{k}", f"unknown key (known: {', '.join(keys)})")
        cfg[name] = {k: (_check_value(f"{name}.{k}", key, section[k]) if k in section
                         else copy.deepcopy(key.default)) for k, key in keys.items()}
    b = cfg["budget"]
    if not 0.0 <= b["test_fraction"] < 1.0:
        raise ConfigError("budget.test_fraction", f"must be in [0, 1), got {b['test_fraction']}")
    transient = cfg["bold"]["transient"]
    if isinstance(transient, str) and transient != "auto":
        raise ConfigError("bold.transient", f"expected a number of ms or 'auto', got {transient!r}")
    for key, value in (("bold.transient", transient), ("bold.warmup", cfg["bold"]["warmup"]),
                       ("stats.burn_in", cfg["stats"]["burn_in"])):
        if not isinstance(value, str) and value < 0:
            raise ConfigError(key, f"must be >= 0, got {value}")
    cfg["run"]["output"] = cfg["run"]["output"].replace("{name}", cfg["run"]["name"])
    if base_dir is not None:
        cfg["run"]["output"] = str((base_dir / cfg["run"]["output"]).resolve())
    cfg["store"]["path"] = cfg["store"]["path"].replace("{output}", cfg["run"]["output"])
    if base_dir is not None:
        cfg["store"]["path"] = str((base_dir / cfg["store"]["path"]).resolve())
    cfg["prior"] = prior_mod.validate(raw.get("prior", {}))
    cfg["train"] = validate_train(raw.get("train", {}))
    cfg["diagnose"] = validate_diagnose(raw.get("diagnose", {}))
    return cfg


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a TOML config file (relative paths resolve against the file's folder)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("", f"config file not found: {p}")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p}: not valid TOML: {exc}") from None
    return validate(raw, base_dir=p.resolve().parent)


def store_view(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of the config that determines the store's rows (what a restart must not change)."""
    view = {s: cfg[s] for s in STORE_SECTIONS}
    for s, k in STORE_KEYS:
        view[f"{s}.{k}"] = cfg[s][k]
    return view


def config_hash(cfg: dict[str, Any]) -> str:
    text = json.dumps(store_view(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two store views (for a refused restart)."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        elif a != b:
            out.append(path)

    walk(old, new, "")
    return out


def dumps(cfg: dict[str, Any]) -> str:
    """The effective config as TOML text (stored in every output)."""
    import tomli_w

    return tomli_w.dumps(_drop_none(cfg))


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj
