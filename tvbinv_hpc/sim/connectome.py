"""Structural connectomes: tvb-data names, TVB .zip/.h5 files, .npz arrays, or weight and length matrices in
the formats labs have (.mat, .csv/.tsv/.txt, .npy) -> weights, tract lengths, delays; with region selection,
symmetrising, normalising and thresholding.

Rows are targets, columns sources (TVB's convention): region i receives ``w[i, j] * x_j(t - d_ij)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from tvbinv_hpc.errors import ConfigError, InputError
from tvbinv_hpc.stats.hemispheres import RegionInfo

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
    # Where the regions came from: the source's region count and the indices kept (drop/keep), so that
    # an observation's BOLD with the source's regions is cut the same way.
    source_regions: int = 0
    kept: np.ndarray | None = None
    stated_hemispheres: Any = "auto"        # connectome.hemispheres, for the features' "auto" pairing
    edges_before_threshold: int = 0
    homotopic_added: tuple[float, int] | None = None   # (weight, pairs) from connectome.homotopic
    # The weights as read (after drop/keep, before symmetrising, normalising, thresholding): what the
    # structural baselines r(FC, SC), r(FC, log(1 + SC)) compare with, whatever transform feeds the model.
    structural: np.ndarray | None = None

    @property
    def n_regions(self) -> int:
        return self.weights.shape[0]

    @property
    def regions(self) -> RegionInfo:
        """Labels, centres and hemisphere statement, for the features' homotopic pairing."""
        return RegionInfo(tuple(self.region_labels), self.centres, self.stated_hemispheres,
                          sc=self.baseline_sc, lengths=self.tract_lengths)

    def select_regions(self, data: np.ndarray, axis: int, where: str) -> np.ndarray:
        """Cut an array with the source's regions along ``axis`` as the connectome was cut; an array that
        already has the connectome's region count is returned as it is."""
        size = data.shape[axis]
        if size == self.n_regions:
            return data
        if self.kept is not None and size == self.source_regions:
            return np.take(data, self.kept, axis=axis)
        also = (f" or the source's {self.source_regions} before connectome.drop/keep"
                if self.kept is not None and self.source_regions != self.n_regions else "")
        raise InputError(f"{where}: {size} regions, but the connectome has {self.n_regions}{also}")

    @property
    def baseline_sc(self) -> np.ndarray:
        """The structural connectivity the report's baselines use: the weights as read, else the model's."""
        return self.weights if self.structural is None else self.structural

    def describe(self) -> str:
        """One line for the log: size, selection, density, symmetry."""
        n = self.n_regions
        off = ~np.eye(n, dtype=bool)
        nnz = int(np.count_nonzero(self.weights[off]))
        sym = "symmetric" if np.allclose(self.weights, self.weights.T) else "not symmetric"
        cut = (f" of {self.source_regions} (connectome.drop/keep)"
               if self.source_regions and self.source_regions != n else "")
        line = f"{n} regions{cut}, {nnz} connections ({100 * nnz / max(1, n * (n - 1)):.0f} % dense), {sym}"
        if self.homotopic_added:
            line += f"; {self.homotopic_added[0]:g} added to {self.homotopic_added[1]} homotopic pairs"
        if self.edges_before_threshold and self.edges_before_threshold != int(np.count_nonzero(self.weights)):
            kept = int(np.count_nonzero(self.weights))
            line += (f"; the threshold kept {kept} of {self.edges_before_threshold} non-zero weights: the "
                     f"coupling sum, a large part of each step's cost on dense connectomes, shrinks to "
                     f"{100 * kept / self.edges_before_threshold:.0f} %")
        return line

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


SYMMETRIZE = ("none", "mean", "max")
NORMALIZE = ("none", "max", "log1p", "sqrt")
WEIGHT_NAMES = ("weights", "sc", "SC", "W", "w", "cm", "CM", "connectivity", "counts")
LENGTH_NAMES = ("tract_lengths", "lengths", "len", "LEN", "length", "distances", "dist", "D")


def _read_pair(path: str, ext: str, options: dict) -> _Arrays:
    """Weights (and tract lengths from ``lengths``) from .mat / text / .npy files, or an .npz that lacks
    the usual names."""
    from tvbinv_hpc.arrays import read_matrix

    w = read_matrix(path, options.get("weights_variable", ""), what="connectome weights", preferred=WEIGHT_NAMES)
    lpath = options.get("lengths", "")
    if not lpath:
        raise InputError(f"connectome '{path}' holds weights only: give the tract lengths (mm) in "
                         "connectome.lengths (a file of the same formats), or use .zip/.h5/.npz with both")
    tl = read_matrix(lpath, options.get("lengths_variable", ""), what="tract lengths", preferred=LENGTH_NAMES)
    n = w.values.shape[0]
    labels = next((lab for lab in (w.column_labels, w.row_labels, tl.column_labels) if len(lab) == n),
                  [f"region_{i}" for i in range(n)])
    return w.values, tl.values, [str(x) for x in labels], None, None


def _select(n: int, drop: list[int], keep: list[int], source: str) -> np.ndarray:
    """Indices of the source's regions that stay, in their order; ``drop`` xor ``keep`` (0-based)."""
    if drop and keep:
        raise ConfigError("connectome.keep", "give connectome.drop or connectome.keep, not both")
    listed = drop or keep
    bad = [i for i in listed if not 0 <= i < n]
    if bad:
        key = "connectome.drop" if drop else "connectome.keep"
        raise ConfigError(key, f"region indices {bad[:5]} outside 0..{n - 1} ('{source}' has {n} regions)")
    if len(set(listed)) != len(listed):
        raise ConfigError("connectome.drop" if drop else "connectome.keep", "an index appears twice")
    if keep:
        return np.asarray(sorted(keep), dtype=np.int64)
    return np.setdiff1d(np.arange(n), np.asarray(drop, dtype=np.int64))


def _read_one(source: str, lengths: str, options: dict) -> tuple[str, _Arrays]:
    """One connectome file (or tvb-data name) -> its arrays, checked for shape and values."""
    named = tvb_data_path(source) if os.sep not in source and not os.path.exists(source) else None
    path = named or os.path.expanduser(source)
    if not os.path.isfile(path):
        raise InputError(f"connectome '{source}': no such file, and not a tvb-data name "
                         f"(known: {', '.join(TVB_DATA_NAMES)})")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz" and not lengths:
        arrays = _from_npz(path)
    elif ext in (".zip", ".h5"):
        arrays = _from_tvb_file(path)
    elif ext in (".npz", ".mat", ".csv", ".tsv", ".txt", ".npy"):
        arrays = _read_pair(path, ext, {**options, "lengths": lengths})
    else:
        raise InputError(f"connectome file '{path}': unknown type '{ext}' (use .zip, .h5, .npz, .mat, .csv, "
                         ".tsv, .txt or .npy)")
    w, tl = arrays[0], arrays[1]
    n = w.shape[0]
    if w.ndim != 2 or w.shape != (n, n) or tl.shape != (n, n):
        raise InputError(f"connectome file '{path}': weights {w.shape} and tract_lengths {tl.shape} "
                         "must both be square and of the same size")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(tl)) and np.all(tl >= 0)):
        raise InputError(f"connectome file '{path}': weights must be finite, tract lengths finite and >= 0")
    return path, arrays


def _group_average(sources: list[str], options: dict) -> _Arrays:
    """A group connectome: the mean of the subjects' weights, and of their tract lengths over the subjects
    that have the tract (length > 0); ``lengths`` is then a list of the same length as ``sources``."""
    lengths = options.get("lengths") or [""] * len(sources)
    if not isinstance(lengths, (list, tuple)) or len(lengths) != len(sources):
        raise ConfigError("connectome.lengths", f"a group connectome of {len(sources)} files needs a list of "
                          f"{len(sources)} tract-length files (or none, for .zip/.h5/.npz sources)")
    read = [_read_one(str(src), str(ln), options)[1] for src, ln in zip(sources, lengths)]
    shapes = {a[0].shape for a in read}
    if len(shapes) != 1:
        raise InputError(f"connectome.source: the group's matrices differ in shape: {sorted(shapes)}")
    w = np.mean([a[0] for a in read], axis=0)
    tls = np.array([a[1] for a in read])
    has = (tls > 0).sum(axis=0)
    tl = np.where(has > 0, tls.sum(axis=0) / np.maximum(has, 1), 0.0)
    return w, tl, read[0][2], read[0][3], read[0][4]


def load_connectome(source: str | list[str], speed: float = 3.0, normalize: str = "max",
                    zero_diagonal: bool = False, **options) -> Connectome:
    """Load a connectome; select regions, symmetrise, normalise, threshold.

    ``source``: a tvb-data name, a TVB .zip/.h5, an .npz ('weights', 'tract_lengths', optional
    'region_labels', 'hemispheres', 'centres'), or a weights matrix in .mat/.csv/.tsv/.txt/.npy with the
    tract lengths in ``options['lengths']``; a list of them is a group connectome (their mean weights and
    mean non-zero lengths; ``lengths`` is then a list too).  Options (the ``[connectome]`` keys): ``weights_variable``,
    ``lengths``, ``lengths_variable``, ``labels`` (a text file), ``drop``/``keep`` (0-based indices of the
    source's regions; the observation's BOLD is cut the same way), ``symmetrize`` (none | mean | max),
    ``threshold`` (weights below this fraction of the largest become 0, after normalising) and
    ``hemispheres`` (kept for the features' "auto" pairing).  Normalise: none | max (w / max|w|) | log1p
    (log(1 + w) / its max) | sqrt (sqrt(w) / its max): fibre counts span orders of magnitude, and these
    compress them (non-negative weights only).
    """
    if normalize not in NORMALIZE:
        raise ConfigError("connectome.normalize", f"must be one of {', '.join(map(repr, NORMALIZE))}, "
                          f"not {normalize!r}")
    symmetrize = options.get("symmetrize", "none")
    if symmetrize not in SYMMETRIZE:
        raise ConfigError("connectome.symmetrize", f"must be one of {', '.join(map(repr, SYMMETRIZE))}, "
                          f"not {symmetrize!r}")
    threshold = float(options.get("threshold", 0.0))
    if not 0.0 <= threshold < 1.0:
        raise ConfigError("connectome.threshold", f"must be in [0, 1) (a fraction of the largest weight), "
                          f"got {threshold}")
    if not (float(speed) > 0):
        raise ConfigError("connectome.speed", f"must be > 0 (m/s), got {speed!r}")
    if isinstance(source, (list, tuple)):
        w, tl, labels, hemi, centres = _group_average(list(source), options)
        path = f"group average of {len(source)}"
    else:
        path, (w, tl, labels, hemi, centres) = _read_one(str(source), options.get("lengths", ""), options)
    n = w.shape[0]
    if options.get("labels"):
        from tvbinv_hpc.arrays import read_labels
        labels = read_labels(options["labels"])
    if len(labels) != n:
        raise InputError(f"connectome '{path}': {len(labels)} region labels for {n} regions")
    kept = _select(n, list(options.get("drop") or []), list(options.get("keep") or []), path)
    w, tl = w[np.ix_(kept, kept)], tl[np.ix_(kept, kept)]
    labels = [labels[i] for i in kept]
    hemi = None if hemi is None else hemi[kept]
    centres = None if centres is None else centres[kept]
    structural = w.copy()
    if symmetrize != "none":
        w = (w + w.T) / 2 if symmetrize == "mean" else np.maximum(w, w.T)
        tl = (tl + tl.T) / 2
    if zero_diagonal:
        np.fill_diagonal(w, 0.0)
    w = _normalized(w, normalize, path)
    edges = int(np.count_nonzero(w))
    if threshold > 0:
        w = np.where(np.abs(w) >= threshold * np.abs(w).max(), w, 0.0)
    conn = Connectome(w, tl, labels, hemi, centres, float(speed))
    conn.source_regions, conn.kept = n, kept
    conn.stated_hemispheres = options.get("hemispheres", "auto")
    conn.edges_before_threshold = edges
    if float(options.get("homotopic", 0.0)) > 0:
        _add_homotopic(conn, float(options["homotopic"]))
    conn.structural = structural
    return conn


def _add_homotopic(conn: Connectome, weight: float) -> None:
    """Add ``weight`` to both directions of every homotopic pair (pairs as the features find them).

    Why: tractography loses most callosal fibres, so in DTI counts the homotopic pairs rank only among the
    other interhemispheric ones, while their resting-state FC is the strongest of all (gw subjects: sqrt
    SC at the 64-74th percentile of interhemispheric weights, FC 0.43-0.76 against 0.16-0.43 on average)."""
    from tvbinv_hpc.stats.hemispheres import resolve

    try:
        h = resolve("auto", conn.n_regions, conn.regions)
    except ValueError as exc:
        raise ConfigError("connectome.homotopic", f"needs the homotopic pairs: {exc}") from None
    new = int(np.count_nonzero(conn.weights[h.left, h.right] == 0) + np.count_nonzero(
        conn.weights[h.right, h.left] == 0))
    conn.weights[h.left, h.right] += weight
    conn.weights[h.right, h.left] += weight
    conn.edges_before_threshold += new
    tl = conn.tract_lengths   # a pair without fibres gets the pairs' median length, not a zero delay
    known = tl[h.left, h.right][tl[h.left, h.right] > 0]
    fill = float(np.median(known)) if known.size else 0.0
    for a, b in ((h.left, h.right), (h.right, h.left)):
        tl[a, b] = np.where(tl[a, b] > 0, tl[a, b], fill)
    conn.homotopic_added = (weight, int(h.left.size))


def _normalized(w: np.ndarray, normalize: str, path: str) -> np.ndarray:
    if normalize == "none":
        return w
    if normalize in ("log1p", "sqrt"):
        if (w < 0).any():
            raise ConfigError("connectome.normalize", f"'{normalize}' needs non-negative weights; '{path}' has "
                              f"{int((w < 0).sum())} negative")
        w = np.log1p(w) if normalize == "log1p" else np.sqrt(w)
    wmax = np.abs(w).max()
    if wmax == 0:
        raise InputError(f"connectome file '{path}': all weights are zero, cannot normalise")
    return w / wmax
