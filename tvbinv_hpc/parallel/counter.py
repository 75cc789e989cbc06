"""Dynamic work distribution: a shared batch counter in an MPI one-sided window on rank 0.

Every rank (rank 0 included) takes the next batch with an atomic fetch-and-add, so fast ranks take more
batches and no rank is wasted as a dispatcher. The same window counts finished and diverged rows, which
rank 0 reads for progress. A stop request "exhausts" the counter so that every rank stops after the
batch it is computing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

NEXT, DONE, DIVERGED = 0, 1, 2
EXHAUSTED = 1 << 60


class Counter:
    def __init__(self, comm: Any):
        self.comm = comm
        self.serial = comm.Get_size() == 1 or not hasattr(comm, "Get_group")
        if self.serial:
            self.local = np.zeros(3, np.int64)
            return
        from mpi4py import MPI

        self.MPI = MPI
        nbytes = 3 * 8 if comm.Get_rank() == 0 else 0
        self.win = MPI.Win.Allocate(nbytes, 8, comm=comm)
        if comm.Get_rank() == 0:
            buf = np.frombuffer(self.win.tomemory(), dtype=np.int64)
            self.win.Lock(0, MPI.LOCK_EXCLUSIVE)
            buf[:] = 0
            self.win.Unlock(0)
        comm.Barrier()

    def _fetch_add(self, slot: int, value: int) -> int:
        if self.serial:
            old = int(self.local[slot])
            self.local[slot] += value
            return old
        got = np.zeros(1, np.int64)
        self.win.Lock(0, self.MPI.LOCK_SHARED)
        self.win.Fetch_and_op(np.array([value], np.int64), got, 0, slot, self.MPI.SUM)
        self.win.Unlock(0)
        return int(got[0])

    def take(self, n: int) -> int:
        """Claim the next ``n`` work items; returns the first item's number (>= total means no work)."""
        return self._fetch_add(NEXT, n)

    def exhaust(self) -> None:
        """Make every later ``take`` return past the end (stop after the batches in flight)."""
        self._fetch_add(NEXT, EXHAUSTED)

    def add_done(self, done: int, diverged: int) -> None:
        self._fetch_add(DONE, done)
        self._fetch_add(DIVERGED, diverged)

    def read(self) -> tuple[int, int]:
        """(rows done, rows diverged) across all ranks in this session."""
        return self._fetch_add(DONE, 0), self._fetch_add(DIVERGED, 0)

    def free(self) -> None:
        if not self.serial:
            self.comm.Barrier()
            self.win.Free()


class WorkList:
    """The session's pending row numbers, held by rank 0 only and read one claimed batch at a time.

    Rank 0 keeps them in the smallest unsigned type that fits (4 bytes per row below 2^32 rows) in an MPI
    window; a rank that claimed positions [start, start + count) of the list gets exactly those entries
    with a one-sided ``Get``. So no rank but 0 holds O(n) state: at 10^6 pending rows rank 0 holds 4 MB,
    every other rank a batch.
    """

    def __init__(self, comm: Any, rows: np.ndarray | None):
        """``rows``: the pending rows on rank 0 (ignored elsewhere). Collective."""
        self.comm = comm
        self.serial = comm.Get_size() == 1 or not hasattr(comm, "Get_group")
        root = comm.Get_rank() == 0
        if root:
            rows = np.asarray(rows, dtype=np.int64)
            code = "u4" if rows.size == 0 or int(rows.max()) < 2**32 else "i8"
            self.local = np.ascontiguousarray(rows, dtype=code)
        self.size, code = comm.bcast((self.local.size, self.local.dtype.str) if root else None, root=0)
        self.dtype = np.dtype(code)
        if self.serial:
            return
        from mpi4py import MPI

        self.MPI = MPI
        self.mpi_type = MPI.UINT32_T if self.dtype.itemsize == 4 else MPI.INT64_T
        self.win = MPI.Win.Create(self.local if root else None, self.dtype.itemsize, comm=comm)

    @property
    def nbytes_on_root(self) -> int:
        return self.size * self.dtype.itemsize

    def get(self, start: int, count: int) -> np.ndarray:
        """Entries [start, start + count) of the list (fewer at its end), as int64 row numbers."""
        stop = min(self.size, start + count)
        if stop <= start:
            return np.empty(0, np.int64)
        if self.serial or self.comm.Get_rank() == 0:
            return self.local[start:stop].astype(np.int64)
        buf = np.empty(stop - start, self.dtype)
        self.win.Lock(0, self.MPI.LOCK_SHARED)
        self.win.Get([buf, self.mpi_type], 0, target=(start, stop - start, self.mpi_type))
        self.win.Unlock(0)
        return buf.astype(np.int64)

    def free(self) -> None:
        """Collective."""
        if not self.serial:
            self.comm.Barrier()
            self.win.Free()
