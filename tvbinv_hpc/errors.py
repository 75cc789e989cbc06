"""Exceptions that carry a clear, user-facing message (no traceback is shown for these)."""
from __future__ import annotations


class TvbinvError(Exception):
    """An expected failure: bad input, a refused restart, a foreign file. Printed as one line."""


class ConfigError(TvbinvError):
    """A config value is wrong; ``key`` is its dotted path (e.g. ``prior.coupling.a.low``)."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"config key '{key}': {message}" if key else message)

    def __reduce__(self) -> tuple:  # broadcast to every rank by pickling
        return (type(self), (self.key, self.message))


class InputError(TvbinvError):
    """A user-supplied file (connectome, observation, store) is missing, foreign or malformed."""


class UnsupportedError(TvbinvError):
    """A TVB Simulator setting the numba engine cannot simulate (``setting``: its dotted name); the compat
    API runs such templates through TVB's own simulator instead (sim.tvb_engine)."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(message)

    def __reduce__(self) -> tuple:  # broadcast to every rank by pickling
        return (type(self), (self.setting, self.args[0]))
