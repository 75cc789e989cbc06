"""One HDF5 file per run: layout, creation, validation on restart, crash-safe row writes, provenance.

Every dataset is allocated at full size when the file is created (contiguous, uncompressed, early
allocation) and never resized; afterwards a row write only overwrites raw bytes at fixed offsets, so a
process killed mid-write leaves a valid file with at most that row partial. A row's ``status`` is written
only after its data: restart recomputes exactly the rows whose status is still pending.
"""
from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tvbinv_hpc.errors import InputError, TvbinvError

FORMAT = "tvbinv_hpc-store"
VERSION = 1
PENDING, OK, DIVERGED, ERROR = 0, 1, 2, 3
STATUS_NAMES = {PENDING: "pending", OK: "ok", DIVERGED: "diverged", ERROR: "error (features not finite)"}
TRAIN, TEST = 0, 1
ROW_DATASETS = ("theta", "x", "status", "split")
# Rows per read/write chunk: 65,536 rows x 100 float64 = 52 MB, so no operation on a 10^6-row store holds
# more than a chunk of theta or x beyond what its caller asked for.
CHUNK_ROWS = 1 << 16


def _h5py() -> Any:
    # Readers (status/inspect) run while a job writes: HDF5's flock would refuse them, and it misbehaves on
    # parallel file systems; crash consistency comes from the write order, not from locks.
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    import h5py

    return h5py


def mpi_enabled() -> bool:
    return bool(_h5py().get_config().mpi)


def library_versions() -> dict[str, str]:
    """h5py's and HDF5's versions and whether HDF5 has MPI (provenance; ``tvbinv-hpc info``)."""
    h5py = _h5py()
    return {"h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version, "hdf5_mpi": str(mpi_enabled())}


def _early(h5py: Any) -> Any:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    return dcpl


def _dataset(f: Any, name: str, shape: tuple[int, ...], dtype: Any, fill: Any = 0, **attrs: Any) -> Any:
    h5py = _h5py()
    dcpl = _early(h5py)
    dcpl.set_fill_value(np.array(fill, dtype=dtype))
    space = h5py.h5s.create_simple(shape)
    tid = h5py.h5t.py_create(np.dtype(dtype))
    dsid = h5py.h5d.create(f.id, name.encode(), tid, space, dcpl=dcpl)
    ds = h5py.Dataset(dsid)
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


@dataclass
class Layout:
    """Everything fixed when a store is created. ``theta``: the (n, d) array, or a function of
    (start, stop) giving those rows, so that a 10^6-row store is written chunk by chunk."""

    theta: np.ndarray | Callable[[int, int], np.ndarray]
    split: np.ndarray
    param_names: list[str]
    feature_names: list[str]
    n_regions: int
    n_bold: int
    tr_ms: float
    save_bold: bool
    config_text: str
    config_hash: str
    store_view: dict[str, Any]
    meta: dict[str, Any]
    kind: str = "simulations"


def create(path: str | Path, layout: Layout) -> None:
    """Write a complete new store under a temporary name, fsync, then rename (never a half-made file)."""
    h5py = _h5py()
    path = Path(path)
    if path.exists():
        raise TvbinvError(f"refusing to overwrite existing file {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    n, d = layout.split.size, len(layout.param_names)
    k = len(layout.feature_names)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({
                "format": FORMAT, "format_version": VERSION, "kind": layout.kind,
                "param_names": json.dumps(layout.param_names), "feature_names": json.dumps(layout.feature_names),
                "n_regions": layout.n_regions, "n_bold": layout.n_bold, "tr_ms": layout.tr_ms,
                "config": layout.config_text, "config_hash": layout.config_hash,
                "store_view": json.dumps(layout.store_view, sort_keys=True, default=str),
                "created": layout.meta.get("created", ""), "versions": json.dumps(layout.meta.get("versions", {})),
                "status_codes": json.dumps({str(c): s for c, s in STATUS_NAMES.items()}),
            })
            theta = _dataset(f, "theta", (n, d), "<f8", np.nan, units="prior parameter values")
            for a in range(0, n, CHUNK_ROWS):
                b = min(n, a + CHUNK_ROWS)
                rows = layout.theta(a, b) if callable(layout.theta) else layout.theta[a:b]
                if np.shape(rows) != (b - a, d):
                    raise TvbinvError(f"theta rows {a}:{b} have shape {np.shape(rows)}, expected {(b - a, d)}")
                theta[a:b] = rows
            _dataset(f, "x", (n, k), "f8", np.nan, units="summary statistics (feature_names)")
            _dataset(f, "status", (n,), "i1", PENDING, codes=json.dumps(STATUS_NAMES))
            _dataset(f, "split", (n,), "i1", TRAIN, codes='{"0": "train", "1": "test"}')[...] = layout.split
            if layout.save_bold:
                _dataset(f, "bold", (n, layout.n_bold, layout.n_regions), "f4", np.nan,
                         units="BOLD signal (a.u.)", tr_ms=layout.tr_ms)
            f.create_group("sessions")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass(frozen=True)
class Refusal:
    """How a refused restart reads to the user: ``{path}`` and ``{changed}`` (the differing keys) are filled
    in. Each front names its own remedy (the pipeline: config keys and paths; compat: its arguments)."""

    other_numerics: str
    other_run: str


CONFIG_REFUSAL = Refusal(
    other_numerics="{path} was made by another version of the simulator, whose rows differ in their last bits "
                   "from this version's: finish it with that version, or choose another run.output / store.path",
    other_run="{path} was made with a different config; changed keys: {changed}. Restore those values, or "
              "choose another run.output / store.path.")


def check(path: str | Path, config_hash: str, store_view: dict[str, Any],
          refusal: Refusal = CONFIG_REFUSAL) -> dict[str, Any]:
    """Validate an existing store against the current run; return its header. Raises clear errors."""
    from tvbinv_hpc.config import changed_keys

    head = read_header(path)
    if head["config_hash"] != config_hash:
        changed = changed_keys(json.loads(head["store_view"]), json.loads(json.dumps(store_view, default=str)))
        text = refusal.other_numerics if "engine.numerics" in changed else refusal.other_run
        raise TvbinvError(text.format(path=path, changed=", ".join(changed) or "(unknown)"))
    return head


def read_header(path: str | Path, read_only: bool = False) -> dict[str, Any]:
    """The store's attributes, checked. ``read_only``: the caller only reads (status, inspect), so the
    errors do not speak of refusing to overwrite the file."""
    h5py = _h5py()
    path = Path(path)
    refusing = "" if read_only else "; refusing to use or overwrite it"
    if read_only and not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise InputError(f"{path} is not a tvbinv_hpc store (format attribute "
                                 f"{f.attrs.get('format')!r}){refusing}")
            if int(f.attrs["format_version"]) > VERSION:
                raise InputError(f"{path} has store format v{f.attrs['format_version']}, this version reads v{VERSION}")
            missing = [name for name in ROW_DATASETS if name not in f]
            if missing:
                raise InputError(f"{path} is damaged: missing datasets {missing}")
            head = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            head["n_rows"] = f["theta"].shape[0]
            head["has_bold"] = "bold" in f
            return head
    except OSError as exc:
        if read_only:
            raise InputError(f"cannot read {path} as HDF5 ({exc}): not a tvbinv_hpc store") from None
        raise InputError(f"cannot read {path} as HDF5 ({exc}); refusing to overwrite it") from None


class Writer:
    """Row writes for one session. ``mode='mpio'``: every rank writes its own rows (collective open/close);
    ``mode='root'``/serial: only rank 0 holds the file open."""

    def __init__(self, path: str | Path, comm: Any, mode: str):
        h5py = _h5py()
        self.mode = mode
        self.comm = comm
        self.f = None
        self.has_bold = False
        self._bold = None
        if mode == "mpio":
            self.f = h5py.File(path, "r+", driver="mpio", comm=comm)
        elif comm.Get_rank() == 0:
            self.f = h5py.File(path, "r+")
        if self.f is not None:
            self.has_bold = "bold" in self.f
            self._x, self._status = self.f["x"], self.f["status"]
            self._bold = self.f["bold"] if self.has_bold else None
        self.has_bold = bool(comm.bcast(self.has_bold, root=0)) if mode != "mpio" else self.has_bold

    def write(self, rows: np.ndarray, x: np.ndarray, status: np.ndarray, bold: np.ndarray | None) -> None:
        """Data first, then status: a kill between the two leaves the rows pending, never half-valid."""
        order = np.argsort(rows)  # h5py point selections must increase
        rows, x, status = rows[order], x[order], status[order]
        runs = np.split(np.arange(rows.size), np.flatnonzero(np.diff(rows) != 1) + 1)
        bold = bold[order] if self._bold is not None and bold is not None else None
        for r in runs:  # contiguous slabs: one hyperslab each
            sl = slice(int(rows[r[0]]), int(rows[r[-1]]) + 1)
            self._x[sl] = x[r]
            if bold is not None:
                self._bold[sl] = bold[r]
        if self.mode != "mpio":
            self.f.flush()
        for r in runs:
            self._status[int(rows[r[0]]): int(rows[r[-1]]) + 1] = status[r]
        if self.mode != "mpio":
            self.f.flush()

    def status(self) -> np.ndarray:
        return self._status[...]

    def add_session(self, record: dict[str, Any]) -> None:
        """Collective in mpio mode: every rank passes the same record (rank 0's, broadcast by the caller)."""
        if self.f is None:
            return
        g = self.f["sessions"]
        name = f"{len(g):05d}"
        s = g.create_group(name)
        s.attrs["record"] = json.dumps(record, default=str)

    def close(self) -> None:
        if self.f is not None:
            self.f.flush()
            self.f.close()
            self.f = None


def read_rows(path: str | Path, *, split: int | None = None, ok_only: bool = True,
              dtype: Any = np.float64) -> dict[str, Any]:
    """theta, x (as ``dtype``), status, split (and names) of the selected rows, read-only.

    Read chunk by chunk into arrays of the selected rows only: the peak is the result plus one chunk,
    not the whole store (training on the train split of a 10^6-row store reads 90 % of it, once).
    """
    h5py = _h5py()
    read_header(path)
    with h5py.File(path, "r") as f:
        status, sp = f["status"][...], f["split"][...]
        sel = np.ones(status.shape, bool)
        if ok_only:
            sel &= status == OK
        if split is not None:
            sel &= sp == split
        idx = np.flatnonzero(sel)
        return {
            "index": idx, "theta": _select(f["theta"], sel, idx.size, dtype),
            "x": _select(f["x"], sel, idx.size, dtype), "status": status,
            "split": sp, "param_names": json.loads(f.attrs["param_names"]),
            "feature_names": json.loads(f.attrs["feature_names"]), "config_hash": f.attrs["config_hash"],
        }


def read_columns(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(status, split): 1 byte per row each, all that restart checks, progress and ``status`` read."""
    with _h5py().File(path, "r") as f:
        return f["status"][...], f["split"][...]


def read_theta(path: str | Path, rows: np.ndarray) -> np.ndarray:
    """theta of ``rows`` (increasing), read chunk by chunk."""
    with _h5py().File(path, "r") as f:
        sel = np.zeros(f["theta"].shape[0], bool)
        sel[rows] = True
        return _select(f["theta"], sel, int(sel.sum()), np.float64)


def read_predictive(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x and status of every row, and the BOLD of the ok rows (float64): a posterior predictive store."""
    with _h5py().File(path, "r") as f:
        x, status = f["x"][...], f["status"][...]
        ok = status == OK
        return x, status, _select(f["bold"], ok, int(ok.sum()), np.float64)


def layout_lines(path: str | Path) -> list[tuple[str, str, str, str]]:
    """(name, shape, dtype, units) of each dataset; groups as (name/, "(n entries)", "", "")."""
    h5py = _h5py()
    out = []
    with h5py.File(path, "r") as f:
        for name, obj in f.items():
            if isinstance(obj, h5py.Dataset):
                out.append((name, str(obj.shape), str(obj.dtype), str(obj.attrs.get("units", ""))))
            else:
                out.append((name + "/", f"({len(obj)} entries)", "", ""))
    return out


def _select(ds: Any, sel: np.ndarray, count: int, dtype: Any) -> np.ndarray:
    out = np.empty((count, *ds.shape[1:]), dtype=dtype)
    at = 0
    for a in range(0, sel.size, CHUNK_ROWS):
        s = sel[a:a + CHUNK_ROWS]
        m = int(s.sum())
        if m:
            out[at:at + m] = ds[a:a + s.size][s]
            at += m
    return out


def theta_location(path: str | Path) -> tuple[int, tuple[int, int]]:
    """(byte offset, shape) of the store's theta: a contiguous little-endian float64 block at a fixed
    place in the file (allocated at creation), which ``ThetaReader`` reads without HDF5."""
    with _h5py().File(path, "r") as f:
        ds = f["theta"]
        offset = ds.id.get_offset()
        if offset is None or ds.chunks is not None or ds.dtype != np.dtype("<f8"):
            raise InputError(f"{path}: theta is not a contiguous float64 dataset (not made by tvbinv_hpc?)")
        return int(offset), (int(ds.shape[0]), int(ds.shape[1]))


class ThetaReader:
    """The theta of given rows, read with ``pread`` from the byte range the store fixed at creation.

    Why not HDF5: in root-writer mode the other ranks must not open a file that rank 0 holds for
    writing, and a thousand ranks opening one HDF5 file each read its metadata at once (a known storm
    on parallel file systems). theta never changes after creation, so the raw bytes are safe to read
    while rows are being written elsewhere in the file. Each rank holds one batch of theta, never O(n).
    """

    def __init__(self, path: str | Path, offset: int, shape: tuple[int, int]):
        self.fd = os.open(path, os.O_RDONLY)
        self.offset, (self.n, self.d) = offset, shape
        self.row_bytes = 8 * self.d

    def read(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.d), dtype="<f8")
        if rows.size and (rows.min() < 0 or rows.max() >= self.n):
            raise IndexError(f"rows outside 0..{self.n - 1}")
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        runs = np.split(np.arange(srt.size), np.flatnonzero(np.diff(srt) != 1) + 1) if srt.size else []
        for r in runs:  # one read per contiguous run of rows
            first, count = int(srt[r[0]]), r.size
            buf = os.pread(self.fd, count * self.row_bytes, self.offset + first * self.row_bytes)
            if len(buf) != count * self.row_bytes:
                raise InputError(f"store truncated: theta rows {first}..{first + count - 1} unreadable")
            out[order[r]] = np.frombuffer(buf, dtype="<f8").reshape(count, self.d)
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def sessions(path: str | Path) -> list[dict[str, Any]]:
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        return [json.loads(f["sessions"][k].attrs["record"]) for k in sorted(f["sessions"])]
