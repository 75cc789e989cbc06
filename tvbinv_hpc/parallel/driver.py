"""The simulate phase: every rank takes batches of pending rows from the shared counter, simulates them,
computes their features and writes them into the store (itself with parallel HDF5, else through rank 0).

Rows are a pure function of (config, seed, row index): the result does not depend on rank count, batch size,
work order or restarts. SIGTERM/SIGUSR1 on any rank exhausts the counter, so every rank finishes the
batch in flight, the session is recorded, and the caller exits with ``REQUEUE_EXIT``.
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tvbinv_hpc.parallel import mpi, store
from tvbinv_hpc.parallel.counter import Counter, WorkList
from tvbinv_hpc.parallel.job import Job
from tvbinv_hpc.parallel.progress import Progress
from tvbinv_hpc.stats.quality import TREND_THRESHOLD, dominated_by_startup

log = logging.getLogger("tvbinv_hpc")
REQUEUE_EXIT = 75  # EX_TEMPFAIL: job scripts resubmit on this code
TAG_ROWS, TAG_DONE = 11, 12


@dataclass
class Outcome:
    rows_done: int
    pending: int
    stopped: bool
    wall: float
    counts: dict[str, int] = field(default_factory=dict)


def writer_mode(requested: str, comm: Any) -> str:
    if comm.Get_size() == 1:
        return "serial"
    if requested == "root":
        return "root"
    if store.mpi_enabled():
        return "mpio"
    if requested == "mpio":
        raise SystemExit("store.writer = 'mpio' but h5py is not built with MPI")
    return "root"


def run_rows(setup: Job, path: str | Path, *, offset: int = 0, progress: str = "auto",
             interval: float = 10.0, writer: str = "auto", what: str = "sims") -> Outcome:
    """Complete the pending rows of ``path`` on all ranks (collective); the simulation index of row i is
    ``offset + i``."""
    comm = mpi.comm()
    rank, nranks = comm.Get_rank(), comm.Get_size()
    t0 = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    n_pending, n_total, n_diverged_before, worklist, thetas = _pending_rows(path, comm)
    mode = writer_mode(writer, comm)
    threads = comm.allgather(setup.engine.threads)
    if rank == 0:
        log.info("simulating on %d rank(s) x %s thread(s) per rank", nranks,
                 threads[0] if len(set(threads)) == 1 else "/".join(map(str, threads)))
    if rank == 0 and mode == "root":
        log.info("h5py has no MPI support (or store.writer = 'root'): the store is written by rank 0")
    stop = mpi.stop_request()
    counter = Counter(comm)
    sink = _RowSink(path, comm, mode)
    bar = Progress(n_total, n_total - n_pending, progress if rank == 0 else "none", interval, what,
                   already_diverged=n_diverged_before)
    B = setup.engine.rows_per_batch(setup.batch_size)   # whole lane groups for every thread
    n_trend = 0   # this rank's finished rows whose BOLD is dominated by a common start-up relaxation
    try:
        while True:
            if stop.received is not None:
                log.warning("signal %d received: finishing the batch in flight, then stopping", stop.received)
                counter.exhaust()
                break
            start = counter.take(B)
            if start >= n_pending:
                break
            rows = worklist.get(start, B)
            x, status, bold = simulate_batch(setup, thetas.read(rows), offset + rows)
            sink.put(rows, x, status, bold)
            n_trend += _startup_dominated(bold, status, setup.engine.tr_ms, rank, warn=not n_trend)
            counter.add_done(rows.size, int(np.sum(status == store.DIVERGED)))
            if rank == 0:
                sink.poll()
                bar.update(*counter.read())
        sink.finish()
        stopped = mpi.agree(stop.received is not None)
        done, diverged = counter.read() if rank == 0 else (0, 0)
        bar.update(done, diverged, force=True)
        bar.close()
        counter.free()
        worklist.free()
        thetas.close()
        mine = {"write": sink.write_seconds, "trend": n_trend, "host": mpi.hostname(), "peak": peak_rss_mb()}
        every = comm.gather(mine, root=0)
        record = None
        if rank == 0:
            record = {
                "kind": what, "ranks": nranks, "hosts": sorted({e["host"] for e in every}), "start": started,
                "end": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "rows_done": done,
                "rows_diverged": diverged, "wall_seconds": round(time.monotonic() - t0, 3),
                "stopped_by_signal": stopped, "writer": mode,
                "write_seconds_max": round(max(e["write"] for e in every), 4), "batch_size": B,
                "threads": threads, "peak_rss_mb": [e["peak"] for e in every],
                "worklist_bytes_rank0": worklist.nbytes_on_root, "command": " ".join(sys.argv),
                "counts": count_status(sink.status(), path), "rows_common_trend": sum(e["trend"] for e in every),
            }
            if record["rows_common_trend"]:
                log.warning("%d of %d rows of this session have BOLD dominated by a common start-up "
                            "relaxation: their FC measures it, not the network (see the report)",
                            record["rows_common_trend"], done)
        record = comm.bcast(record, root=0)
        sink.writer.add_session(record)
    except BaseException:
        # An mpio file's close is collective: a rank failing alone would hang there. Abort the job instead
        # (the failing rank's traceback is printed; finished rows are already in the file).
        if nranks > 1:
            mpi.abort_on_exception(*sys.exc_info())
        raise
    sink.writer.close()
    return Outcome(record["rows_done"], record["counts"].get("pending", 0), record["stopped_by_signal"],
                   record["wall_seconds"], record["counts"])


def _pending_rows(path: str | Path, comm: Any) -> tuple[int, int, int, WorkList, store.ThetaReader]:
    """(pending, total, diverged before) counts, the work list and a theta reader (collective).

    Only rank 0 reads the status column (1 byte per row) and keeps the pending row numbers; the other
    ranks get their batch's rows from it (WorkList) and that batch's theta from the file (ThetaReader):
    per-rank memory is O(batch) whatever n.
    """
    pending: dict[str, np.ndarray] = {}

    def todo() -> tuple[int, int, int, int, tuple[int, int]]:
        status, _ = store.read_columns(path)
        pending["rows"] = np.flatnonzero(status == store.PENDING)
        at, shape = store.theta_location(path)
        return int(pending["rows"].size), int(status.size), int(np.sum(status == store.DIVERGED)), at, shape

    n_pending, n_total, n_diverged, at, shape = mpi.decide(todo)
    return n_pending, n_total, n_diverged, WorkList(comm, pending.pop("rows", None)), \
        store.ThetaReader(path, at, shape)


class _RowSink:
    """Where a rank's finished rows go: the store directly (serial, or every rank with parallel HDF5), or,
    in root mode, a message to rank 0, which writes what it receives between its own batches."""

    def __init__(self, path: str | Path, comm: Any, mode: str):
        self.comm, self.mode = comm, mode
        self.rank, self.nranks = comm.Get_rank(), comm.Get_size()
        self.writer = store.Writer(path, comm, "mpio" if mode == "mpio" else "serial")
        self.write_seconds = 0.0
        self.requests: list[Any] = []
        self.finished_ranks = 0

    def put(self, rows: np.ndarray, x: np.ndarray, status: np.ndarray, bold: np.ndarray) -> None:
        keep_bold = bold if self.writer.has_bold else None
        if self.mode == "root" and self.rank != 0:
            self.requests.append(self.comm.isend((rows, x, status, keep_bold), dest=0, tag=TAG_ROWS))
        else:
            self._write(rows, x, status, keep_bold)

    def _write(self, rows: np.ndarray, x: np.ndarray, status: np.ndarray, bold: Any) -> None:
        tw = time.monotonic()
        self.writer.write(rows, x, status, bold)
        self.write_seconds += time.monotonic() - tw

    def poll(self, block: bool = False) -> None:
        """Rank 0 in root mode: write the rows the other ranks have sent (all of them when ``block``)."""
        if self.mode != "root" or self.rank != 0:
            return
        from mpi4py import MPI

        st = MPI.Status()
        while self.finished_ranks < self.nranks - 1 and (block or self.comm.Iprobe(source=MPI.ANY_SOURCE,
                                                                                    status=st)):
            msg = self.comm.recv(source=MPI.ANY_SOURCE, status=st)
            if st.Get_tag() == TAG_DONE:
                self.finished_ranks += 1
            else:
                self._write(*msg)

    def finish(self) -> None:
        """Root mode: every row reaches rank 0 before the session ends."""
        if self.mode != "root":
            return
        if self.rank == 0:
            self.poll(block=True)
        else:
            for r in self.requests:
                r.wait()
            self.comm.send(None, dest=0, tag=TAG_DONE)

    def status(self) -> np.ndarray | None:
        return self.writer.status() if self.writer.f is not None else None


def _startup_dominated(bold: np.ndarray, status: np.ndarray, tr_ms: float, rank: int, warn: bool) -> int:
    """Rows of a batch whose BOLD is dominated by a relaxation common to all regions (warned once)."""
    ok = status == store.OK
    flagged = int(np.sum(dominated_by_startup(bold[ok], tr_ms))) if ok.any() else 0
    if flagged and warn:
        log.warning("rank %d: the BOLD of %d of %d rows of a batch is dominated (> %.0f %% of its variance) by "
                    "a slow relaxation common to all regions, typically a start-up artefact (see bold.start, "
                    "bold.transient)", rank, flagged, status.size, 100 * TREND_THRESHOLD)
    return flagged


def simulate_batch(setup: Job, theta: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
    """One batch: simulate, compute features, derive the row status (ok / diverged / features not finite)."""
    res = setup.engine.simulate(setup.prior.values(theta), np.asarray(index, np.int64))
    status = np.where(res.status == 1, store.OK, store.DIVERGED).astype(np.int8)
    x = np.full((theta.shape[0], len(setup.features.names)), np.nan)
    ok = status == store.OK
    if ok.any():
        x[ok] = setup.features.compute(res.bold[ok])
    status[ok & ~np.isfinite(x).all(axis=1)] = store.ERROR
    return x, status, res.bold


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB), recorded per rank in every session."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return round(kb / 1024.0, 1)


def count_status(status: np.ndarray | None, path: str | Path) -> dict[str, int]:
    if status is None:
        status, _ = store.read_columns(path)
    return {name.split(" ")[0]: int(np.sum(status == code)) for code, name in store.STATUS_NAMES.items()}
