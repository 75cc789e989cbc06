"""Structural connectomes: tvb-data names, TVB .zip/.h5 files or .npz arrays -> weights, tract lengths,
delays.

Rows are targets, columns sources (TVB's convention): region i receives ``w[i, j] * x_j(t - d_ij)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tvbinv_hpc.errors import ConfigError, InputError

TVB_DATA_NAMES = ("connectivity_66", "connectivity_68", "connectivity_76", "connectivity_96",
                  "connectivity_192", "paupau")


@dataclass
class Connectome:
    """A connectome ready for the simulator (weights already normalised as requested)."""

    weights: np.ndarray          # (N, N) float64, rows = targets
    tract_lengths: np.ndarray    # (N, N) float64, mm
    region_labels: list[str]
    hemispheres: np.ndarray | None = None   # (N,) bool, True = right, when the source has it
    centres: np.ndarray | None = None       # (N, 3) float64, when the source has it
    speed: float = 3.0                      # conduction speed, m/s = mm/ms

    @property
    def n_regions(self) -> int:
        return self.weights.shape[0]

    def idelays(self, dt_ms: float) -> np.ndarray:
        """Integer delays in steps of ``dt_ms``, ``rint(tract_length / speed / dt)`` exactly as TVB's
        Connectivity (TVB passes its dt in model units: see Engine's tvb_delays)."""
        return idelays(self.tract_lengths, self.speed, dt_ms)


def idelays(tract_lengths: np.ndarray, speed: float, dt: float) -> np.ndarray:
    """TVB's ``rint(tract_lengths / speed / dt)`` as int64 (speed inf gives zero delays)."""
    delays = np.asarray(tract_lengths, dtype=np.float64) / float(speed)
    return np.rint(delays / dt).astype(np.int64)


def tvb_data_path(name: str) -> str | None:
    """Path of the tvb-data zip called ``name`` (e.g. 'connectivity_76'), or None."""
    try:
        import tvb_data
    except ImportError:
        return None
    base = os.path.join(os.path.dirname(tvb_data.__file__), "connectivity")
    path = os.path.join(base, name if name.endswith(".zip") else name + ".zip")
    return path if os.path.isfile(path) else None


_Arrays = tuple[np.ndarray, np.ndarray, list[str], "np.ndarray | None", "np.ndarray | None"]


def _quiet_tvb_import() -> None:
    """Import TVB once without its import-time chatter (geodesic-module warning, INFO lines on stdout)."""
    import logging
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import tvb.simulator.lab  # noqa: F401  (TVB sets its loggers up there, once, before any datatype use)
    # A connectome without a hemispheres file is normal (connectivity_76): not worth a warning per rank.
    logging.getLogger("tvb.basic.readers").setLevel(logging.ERROR)


def _from_tvb_file(path: str) -> _Arrays:
    _quiet_tvb_import()
    from tvb.datatypes.connectivity import Connectivity
    try:
        conn = Connectivity.from_file(path)
    except Exception as exc:  # TVB raises assorted errors on foreign files
        raise InputError(f"connectome file '{path}' could not be read as a TVB connectivity: {exc}") from exc
    hemi = conn.hemispheres
    hemi = None if hemi is None or np.size(hemi) != conn.weights.shape[0] else np.asarray(hemi, dtype=bool)
    centres = conn.centres
    centres = None if centres is None or np.size(centres) == 0 else np.asarray(centres, dtype=np.float64)
    return (np.array(conn.weights, dtype=np.float64), np.array(conn.tract_lengths, dtype=np.float64),
            [str(s) for s in conn.region_labels], hemi, centres)


def _from_npz(path: str) -> _Arrays:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"connectome file '{path}' is not a readable .npz: {exc}") from exc
    missing = [k for k in ("weights", "tract_lengths") if k not in data.files]
    if missing:
        raise InputError(f"connectome file '{path}' lacks array(s) {missing} (has {data.files})")
    w = np.array(data["weights"], dtype=np.float64)
    n = w.shape[0]
    labels = [str(s) for s in data["region_labels"]] if "region_labels" in data.files else \
        [f"region_{i}" for i in range(n)]
    hemi = np.asarray(data["hemispheres"], dtype=bool) if "hemispheres" in data.files else None
    centres = np.asarray(data["centres"], dtype=np.float64) if "centres" in data.files else None
    return w, np.array(data["tract_lengths"], dtype=np.float64), labels, hemi, centres


def load_connectome(source: str, speed: float = 3.0, normalize: str = "max",
                    zero_diagonal: bool = False) -> Connectome:
    """Load a connectome by tvb-data name, TVB .zip/.h5 path or .npz path (arrays 'weights', 'tract_lengths',
    optional 'region_labels', 'hemispheres', 'centres'); normalise ("none" | "max": w / max|w|)."""
    if normalize not in ("none", "max"):
        raise ConfigError("connectome.normalize", f"must be 'none' or 'max', not {normalize!r}")
    if not (float(speed) > 0):
        raise ConfigError("connectome.speed", f"must be > 0 (m/s), got {speed!r}")
    source = str(source)
    named = tvb_data_path(source) if os.sep not in source and not os.path.exists(source) else None
    path = named or os.path.expanduser(source)
    if not os.path.isfile(path):
        raise InputError(f"connectome '{source}': no such file, and not a tvb-data name "
                         f"(known: {', '.join(TVB_DATA_NAMES)})")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        w, tl, labels, hemi, centres = _from_npz(path)
    elif ext in (".zip", ".h5"):
        w, tl, labels, hemi, centres = _from_tvb_file(path)
    else:
        raise InputError(f"connectome file '{path}': unknown type '{ext}' (use .zip, .h5 or .npz)")
    n = w.shape[0]
    if w.ndim != 2 or w.shape != (n, n) or tl.shape != (n, n):
        raise InputError(f"connectome file '{path}': weights {w.shape} and tract_lengths {tl.shape} "
                         "must both be square and of the same size")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(tl)) and np.all(tl >= 0)):
        raise InputError(f"connectome file '{path}': weights must be finite, tract lengths finite and >= 0")
    if len(labels) != n:
        raise InputError(f"connectome file '{path}': {len(labels)} region labels for {n} regions")
    if zero_diagonal:
        np.fill_diagonal(w, 0.0)
    if normalize == "max":
        wmax = np.abs(w).max()
        if wmax == 0:
            raise InputError(f"connectome file '{path}': all weights are zero, cannot normalise")
        w = w / wmax
    return Connectome(w, tl, labels, hemi, centres, float(speed))
