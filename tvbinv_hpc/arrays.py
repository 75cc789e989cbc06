"""Numeric matrices from the files labs have: MATLAB ``.mat`` (v5 and v7.3), ``.csv``/``.tsv``/``.txt``,
``.npy``/``.npz``, and region labels from text files.

This module owns reading those formats; connectome.py and inference/observe.py decide what the arrays
mean.  Every failure is an :class:`InputError` naming the file (and the variable when there are several).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tvbinv_hpc.errors import InputError

MATRIX_SUFFIXES = (".mat", ".csv", ".tsv", ".txt", ".npy", ".npz")


@dataclass
class Table:
    """A 2-D array read from a file, with the labels its header row or first column carried."""

    values: np.ndarray                       # float64, 2-D
    source: str                              # "file" or "file:variable"
    column_labels: list[str] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)


def read_matrix(path: str | Path, variable: str = "", *, what: str = "matrix",
                preferred: tuple[str, ...] = ()) -> Table:
    """Read one 2-D numeric array from ``path``.

    ``variable`` names the array inside a ``.mat``/``.npz`` file; without it the only 2-D numeric array is
    taken, else the first of ``preferred`` present, else the error lists the candidates.  Text files
    may have one header row and/or one label column (detected: a non-numeric first row/column).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        if variable:
            raise InputError(f"{p}: a .npy file holds one array; remove the variable name '{variable}'")
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{p}: cannot read as .npy: {exc}") from exc
        return Table(_numeric_2d(a, str(p)), str(p))
    if suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise InputError(f"{p}: cannot read as .npz: {exc}") from exc
        name = _pick(arrays, variable, preferred, p)
        return Table(_numeric_2d(arrays[name], f"{p}:{name}"), f"{p}:{name}")
    if suffix == ".mat":
        arrays = _read_mat(p)
        name = _pick(arrays, variable, preferred, p)
        return Table(_numeric_2d(arrays[name], f"{p}:{name}"), f"{p}:{name}")
    if suffix in (".csv", ".tsv", ".txt"):
        if variable:
            raise InputError(f"{p}: a text matrix holds one array; remove the variable name '{variable}'")
        return _read_text(p, suffix)
    raise InputError(f"{p}: unknown {what} format '{suffix}' (use {', '.join(MATRIX_SUFFIXES)})")


def _numeric_2d(a: np.ndarray, where: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(f"{where}: expected numbers, got {a.dtype}")
    a = np.squeeze(a) if a.ndim > 2 else a
    if a.ndim != 2:
        raise InputError(f"{where}: expected a 2-D array, got shape {a.shape}")
    return np.array(a, dtype=np.float64)


def _candidates(arrays: dict[str, np.ndarray]) -> list[str]:
    return [k for k, v in arrays.items() if isinstance(v, np.ndarray) and np.squeeze(v).ndim == 2
            and (np.issubdtype(v.dtype, np.number) or v.dtype == bool)]


def _pick(arrays: dict[str, np.ndarray], variable: str, preferred: tuple[str, ...], p: Path) -> str:
    listing = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items()) or "none"
    if variable:
        if variable not in arrays:
            raise InputError(f"{p}: no variable '{variable}'; variables: {listing}")
        return variable
    cands = _candidates(arrays)
    if len(cands) == 1:
        return cands[0]
    for name in preferred:
        if name in cands:
            return name
    if not cands:
        raise InputError(f"{p}: no 2-D numeric variable; variables: {listing}")
    raise InputError(f"{p}: several 2-D variables ({listing}); name the one to use")


def _read_mat(p: Path) -> dict[str, np.ndarray]:
    """MATLAB v4-v7.2 through scipy; v7.3 (HDF5) through h5py, transposed back to MATLAB's row x column."""
    import scipy.io

    try:
        raw = scipy.io.loadmat(str(p))
        return {k: v for k, v in raw.items() if not k.startswith("__")}
    except NotImplementedError:   # v7.3: an HDF5 file
        pass
    except Exception as exc:
        raise InputError(f"{p}: cannot read as a MATLAB file: {exc}") from exc
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(p, "r") as f:
            for k, v in f.items():
                if isinstance(v, h5py.Dataset) and not k.startswith("#"):
                    out[k] = np.asarray(v[...]).T     # HDF5 stores MATLAB's column-major arrays transposed
    except Exception as exc:
        raise InputError(f"{p}: cannot read as a MATLAB v7.3 (HDF5) file: {exc}") from exc
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_text(p: Path, suffix: str) -> Table:
    text = p.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{p}: empty file")
    if suffix == ".csv" or (suffix == ".txt" and "," in lines[0]):
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
    elif suffix == ".tsv" or "\t" in lines[0]:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter="\t"))
    else:
        rows = [ln.split() for ln in lines]
    rows = [[c.strip() for c in r] for r in rows]
    col_labels: list[str] = []
    if rows and not all(_is_number(c) for c in rows[0] if c):
        col_labels, rows = rows[0], rows[1:]
    row_labels: list[str] = []
    if rows and not all(_is_number(r[0]) for r in rows if r):
        row_labels = [r[0] for r in rows]
        rows = [r[1:] for r in rows]
        if col_labels and len(col_labels) == len(rows[0]) + 1:
            col_labels = col_labels[1:]
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InputError(f"{p}: rows have different lengths {sorted(widths)}")
    try:
        values = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{p}: not a numeric matrix: {exc}") from None
    if values.ndim != 2 or values.size == 0:
        raise InputError(f"{p}: no numeric rows")
    return Table(values, str(p), col_labels, row_labels)


def read_labels(path: str | Path) -> list[str]:
    """Region labels: a text file with one label per line (or the first column of a .csv/.tsv)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"region labels file not found: {p}")
    out = []
    for line in p.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cell = next(csv.reader([line], delimiter="\t" if "\t" in line else ","))[0].strip()
        out.append(cell)
    if not out:
        raise InputError(f"{p}: no region labels in the file")
    return out
