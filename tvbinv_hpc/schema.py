"""The config schema's building block, shared by every stage that owns a section of the TOML.

config.py assembles the sections in the order the generated README reference lists them: ``run`` (its own),
the simulator's (sim/defaults.py), ``stats`` (stats/featureset.py), ``budget`` and ``store``
(parallel/job.py), ``observation`` (inference/settings.py); ``prior``, ``train`` and ``diagnose`` validate
themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Key", "config_key"]


@dataclass(frozen=True)
class Key:
    """One config key: accepted types, default, one-line doc, allowed values, and whether it must be > 0."""

    types: tuple[type, ...]
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    positive: bool = False


def config_key(types: Any, default: Any, doc: str, **kw: Any) -> Key:
    """A :class:`Key` from one type or a tuple of types."""
    return Key(types if isinstance(types, tuple) else (types,), default, doc, **kw)
