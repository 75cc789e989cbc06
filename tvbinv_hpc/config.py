"""TOML run description -> validated config dict with every default filled in, plus a stable hash.

The schema below is the single source for validation and for the generated config reference (README).
Each stage owns its section (tvbinv_hpc.schema.Key): ``run`` here, the simulator's in sim/defaults.py,
``stats`` in stats/featureset.py, ``budget``/``store`` in parallel/job.py, ``observation`` in
inference/settings.py; ``prior``, ``train``/``diagnose`` and ``stats.features`` validate themselves.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

from tvbinv_hpc.errors import ConfigError
from tvbinv_hpc.inference.settings import OBSERVATION_SCHEMA
from tvbinv_hpc.parallel.job import BUDGET_SCHEMA, STORE_SCHEMA
from tvbinv_hpc.schema import Key
from tvbinv_hpc.schema import config_key as _k
from tvbinv_hpc.stats.featureset import STATS_SCHEMA

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FLOAT_OR_LIST = (float, list)


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
}


def _sim_sections() -> dict[str, dict[str, Key]]:
    """The simulator's sections, from its own defaults table (one source for values and docs)."""
    from tvbinv_hpc.sim.defaults import DEFAULTS

    extra: dict[str, dict[str, Any]] = {
        "connectome.normalize": {"choices": ("none", "max", "log1p", "sqrt")},
        "connectome.symmetrize": {"choices": ("none", "mean", "max")},
        "integrator.scheme": {"choices": ("adaptive", "fixed")},
        "bold.start": {"choices": ("steady", "rest")},
    }
    out: dict[str, dict[str, Key]] = {}
    for section, keys in DEFAULTS.items():
        out[section] = {}
        for key, (default, doc) in keys.items():
            if isinstance(default, bool):
                types: tuple[type, ...] = (bool,)
            elif f"{section}.{key}" in INT_LISTS:
                types = (list,)
            elif f"{section}.{key}" == "connectome.hemispheres":
                types = (str, dict)
            elif f"{section}.{key}" in ("connectome.source", "connectome.lengths"):
                types = (str, list)
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


INT_LISTS = ("connectome.drop", "connectome.keep")
POSITIVE = {"connectome.speed", "integrator.dt", "simulation.length", "simulation.ms_per_unit",
            "bold.tavg_period", "bold.tr"}
# Each stage owns its section; the order here is the generated reference's order.
SCHEMA = {**SCHEMA, **_sim_sections(), "stats": STATS_SCHEMA, "budget": BUDGET_SCHEMA, "store": STORE_SCHEMA,
          "observation": OBSERVATION_SCHEMA}
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
    threads = b["threads"]
    if threads != "auto" and (isinstance(threads, str) or threads < 1):
        raise ConfigError("budget.threads", f"expected a positive integer or 'auto', got {threads!r}")
    transient = cfg["bold"]["transient"]
    if isinstance(transient, str) and transient != "auto":
        raise ConfigError("bold.transient", f"expected a number of ms or 'auto', got {transient!r}")
    for key, value in (("bold.transient", transient), ("bold.warmup", cfg["bold"]["warmup"]),
                       ("stats.burn_in", cfg["stats"]["burn_in"])):
        if not isinstance(value, str) and value < 0:
            raise ConfigError(key, f"must be >= 0, got {value}")
    _check_inputs(cfg)
    if base_dir is not None:
        _resolve_paths(cfg, base_dir)
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


def _check_inputs(cfg: dict[str, Any]) -> None:
    """What the schema's types cannot say about the input keys (sizes are checked when the data load)."""
    c, o = cfg["connectome"], cfg["observation"]
    for key in ("source", "lengths"):
        v = c[key]
        if isinstance(v, list) and not (v and all(isinstance(p, str) and p for p in v)):
            raise ConfigError(f"connectome.{key}", "a group connectome is a non-empty list of files")
    for key in ("drop", "keep"):
        v = c[key]
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v):
            raise ConfigError(f"connectome.{key}", f"expected a list of 0-based region indices, got {v!r}")
    if not 0.0 <= c["threshold"] < 1.0:
        raise ConfigError("connectome.threshold", f"must be in [0, 1), got {c['threshold']}")
    if not (isinstance(c["homotopic"], (int, float)) and 0.0 <= c["homotopic"] < math.inf):
        raise ConfigError("connectome.homotopic", f"must be a number >= 0 (added weight), got {c['homotopic']!r}")
    h = c["hemispheres"]
    if isinstance(h, str) and h not in ("auto", "halves", "interleaved"):
        raise ConfigError("connectome.hemispheres", f"{h!r} is not 'auto', 'halves', 'interleaved' or a "
                          "table {left = [...], right = [...]}")
    if isinstance(h, dict) and set(h) != {"left", "right"}:
        raise ConfigError("connectome.hemispheres", f"a table needs exactly the keys left and right, got "
                          f"{sorted(h)}")
    src = o["source"]
    if isinstance(src, list):
        if not src or not all(isinstance(p, str) and p for p in src):
            raise ConfigError("observation.source", "a cohort is a non-empty list of file paths")
        if "synthetic" in src:
            raise ConfigError("observation.source", "'synthetic' cannot be part of a cohort list")
    if not all(isinstance(n, str) and n for n in o["subjects"]):
        raise ConfigError("observation.subjects", f"expected a list of names, got {o['subjects']!r}")
    if o["tr"] < 0:
        raise ConfigError("observation.tr", f"must be >= 0 ms (0: not stated), got {o['tr']}")


def _resolve_paths(cfg: dict[str, Any], base_dir: Path) -> None:
    """Input files relative to the config file's folder, as run.output; tvb-data names stay names."""
    import os

    from tvbinv_hpc.sim.connectome import tvb_data_path

    def rel(value: str) -> str:
        p = Path(value).expanduser()
        return value if p.is_absolute() else str((base_dir / p).resolve())

    c = cfg["connectome"]
    for key in ("source", "lengths", "labels"):
        if isinstance(c[key], list):
            c[key] = [p if os.sep not in p and tvb_data_path(p) else rel(p) for p in c[key]]
        elif c[key] and not (key == "source" and os.sep not in c[key] and tvb_data_path(c[key])):
            c[key] = rel(c[key])
    o = cfg["observation"]
    if isinstance(o["source"], list):
        o["source"] = [rel(p) for p in o["source"]]
    elif o["source"] != "synthetic":
        o["source"] = rel(o["source"])
    ih = cfg["simulation"]["initial_history"]
    if ih != "random":
        cfg["simulation"]["initial_history"] = rel(ih)


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
    from tvbinv_hpc.sim.defaults import NUMERICS

    view = {s: cfg[s] for s in STORE_SECTIONS}
    for s, k in STORE_KEYS:
        view[f"{s}.{k}"] = cfg[s][k]
    view["engine.numerics"] = NUMERICS
    return view


def config_hash(cfg: dict[str, Any]) -> str:
    """The hash of ``store_view(cfg)``: equal exactly when a store's rows would be equal."""
    return view_hash(store_view(cfg))


def view_hash(view: dict[str, Any]) -> str:
    """16 hex digits identifying a store view (the pipeline's config, or compat's run arguments)."""
    text = json.dumps(view, sort_keys=True, separators=(",", ":"), default=str)
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
