"""Parameter declarations and validation for the feature registry.

A check receives the raw config value and a :class:`Context` and returns the normalised value or raises
``ValueError`` with a message; the builder turns that into ``ConfigError("features[i].<param>", ...)``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .hemispheres import Hemispheres, RegionInfo
from .hemispheres import resolve as resolve_hemispheres

__all__ = ["Context", "Param", "Hemispheres", "samples", "positive_int", "boolean", "quantile_list",
           "choice_list", "hemispheres", "text"]


@dataclass(frozen=True)
class Context:
    n_regions: int
    tr_ms: float
    regions: RegionInfo | None = None   # labels / centres / statement of the connectome, for "auto" pairing


@dataclass(frozen=True)
class Param:
    """One feature parameter: default (TOML-representable), one-line doc, check/normaliser.

    ``seconds_alias`` marks a window parameter that may also be given in seconds as ``<name>_s``.
    """
    default: Any
    doc: str
    check: Callable[[Any, Context], Any]
    seconds_alias: bool = False


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def samples(minimum: int) -> Callable[[Any, Context], int]:
    def check(v: Any, ctx: Context) -> int:
        if not _is_int(v) or v < minimum:
            raise ValueError(f"must be an integer number of TR samples >= {minimum}, got {v!r}")
        return int(v)
    return check


def seconds_to_samples(v: Any, ctx: Context, minimum: int) -> int:
    """``v`` seconds -> whole TR samples; refuses a value that is not a multiple of the TR."""
    if not _is_number(v) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"must be a positive number of seconds, got {v!r}")
    n = v * 1000.0 / ctx.tr_ms
    k = round(n)
    if abs(n - k) > 1e-6 * max(1.0, n):
        raise ValueError(f"{v} s is not a whole number of TRs (TR = {ctx.tr_ms} ms)")
    if k < minimum:
        raise ValueError(f"{v} s is {k} TR sample(s); need >= {minimum}")
    return int(k)


def positive_int(v: Any, ctx: Context) -> int:
    if not _is_int(v) or v < 1:
        raise ValueError(f"must be a positive integer, got {v!r}")
    return int(v)


def boolean(v: Any, ctx: Context) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"must be true or false, got {v!r}")
    return bool(v)


def text(v: Any, ctx: Context) -> str:
    if not isinstance(v, str) or not all(c.isalnum() or c in "_-." for c in v):
        raise ValueError(f"must be a string of letters, digits, '_', '-', '.', got {v!r}")
    return v


def quantile_list(v: Any, ctx: Context) -> list[float]:
    if not isinstance(v, (list, tuple)) or not all(_is_number(q) and 0.0 <= q <= 1.0 for q in v):
        raise ValueError(f"must be a list of numbers in [0, 1], got {v!r}")
    if len(set(v)) != len(v):
        raise ValueError(f"has duplicates: {v!r}")
    return [float(q) for q in v]


def choice_list(choices: tuple[str, ...]) -> Callable[[Any, Context], list[str]]:
    def check(v: Any, ctx: Context) -> list[str]:
        if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) for s in v):
            raise ValueError(f"must be a list of names from {list(choices)}, got {v!r}")
        bad = [s for s in v if s not in choices]
        if bad:
            raise ValueError(f"unknown {bad}; choose from {list(choices)}")
        if len(set(v)) != len(v):
            raise ValueError(f"has duplicates: {v!r}")
        return list(v)
    return check


def hemispheres(v: Any, ctx: Context) -> Hemispheres:
    """A feature's homotopic pairing: explicit, or ``"auto"`` from the connectome (see stats.hemispheres)."""
    return resolve_hemispheres(v, ctx.n_regions, ctx.regions)
