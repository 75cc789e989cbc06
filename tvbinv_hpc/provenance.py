"""Provenance recorded in every output: the versions of every library that shapes a result, and when.

Its own module because the store (every rank, at creation) and ``tvbinv-hpc info`` (a verb) both need it:
the verb reports what the store records, and the store must not import the command line.
"""
from __future__ import annotations

import datetime as dt
import importlib
import platform
from typing import Any

from tvbinv_hpc._version import __version__


def _version(module: str, attr: str = "__version__") -> str:
    try:
        return str(getattr(importlib.import_module(module), attr))
    except Exception as exc:  # noqa: BLE001 - a version listing reports, never fails
        return f"missing ({exc.__class__.__name__})"


def _tvb_version() -> str:
    try:
        from importlib.metadata import version

        return version("tvb-library")
    except Exception:  # noqa: BLE001
        return "missing"


def versions() -> dict[str, str]:
    """Versions of every library that shapes a result (stored in every output file).

    Returns
    -------
    dict of str to str
        Package name -> version; ``missing (...)`` for a library that does not import, never an error.
    """
    from tvbinv_hpc.parallel import mpi, store

    out = {
        "tvbinv_hpc": __version__, "python": platform.python_version(), "numpy": _version("numpy"),
        "numba": _version("numba"), "scipy": _version("scipy"), "torch": _version("torch"),
        "sbi": _version("sbi"), "tvb-library": _tvb_version(), **store.library_versions(),
        "netCDF4": _version("netCDF4"), "xarray": _version("xarray"),
    }
    out.update(mpi.library_versions())
    return out


def created() -> dict[str, Any]:
    """A new output's provenance: creation time (UTC, seconds) and ``versions()``."""
    return {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "versions": versions()}
