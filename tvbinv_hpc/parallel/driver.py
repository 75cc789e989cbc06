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


def run_rows(setup: Any, path: str | Path, *, offset: int = 0, progress: str = "auto",
             interval: float = 10.0, writer: str = "auto", what: str = "sims") -> Outcome:
    """Complete the pending rows of ``path`` on all ranks (collective). ``setup`` has engine, features,
    prior, batch_size; simulation index of row i is ``offset + i``."""
    comm = mpi.comm()
    rank, nranks = comm.Get_rank(), comm.Get_size()
    t0 = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    # Only rank 0 reads the status column (1 byte per row) and keeps the pending row numbers; the other
    # ranks get their batch's rows from it (WorkList) and that batch's theta from the file (ThetaReader):
    # per-rank memory is O(batch) whatever n.
    pending: dict[str, np.ndarray] = {}

    def todo() -> tuple[int, int, int, int, tuple[int, int]]:
        status, _ = store.read_columns(path)
        pending["rows"] = np.flatnonzero(status == store.PENDING)
        at, shape = store.theta_location(path)
        return int(pending["rows"].size), int(status.size), int(np.sum(status == store.DIVERGED)), at, shape

    n_pending, n_total, n_diverged_before, theta_offset, theta_shape = mpi.decide(todo)
    worklist = WorkList(comm, pending.pop("rows", None))
    thetas = store.ThetaReader(path, theta_offset, theta_shape)
    mode = writer_mode(writer, comm)
    threads = comm.allgather(setup.engine.threads)
    if rank == 0:
        log.info("simulating on %d rank(s) x %s thread(s) per rank", nranks,
                 threads[0] if len(set(threads)) == 1 else "/".join(map(str, threads)))
    if rank == 0 and mode == "root":
        log.info("h5py has no MPI support (or store.writer = 'root'): the store is written by rank 0")
    stop = mpi.stop_request()
    counter = Counter(comm)
    w = store.Writer(path, comm, "mpio" if mode == "mpio" else "serial")
    bar = Progress(n_total, n_total - n_pending, progress if rank == 0 else "none", interval, what,
                   already_diverged=n_diverged_before)
    B = setup.engine.rows_per_batch(setup.batch_size)   # whole lane groups for every thread
    done = diverged = finished_ranks = 0
    n_trend = 0   # this rank's finished rows whose BOLD is dominated by a common start-up relaxation
    write_s = 0.0
    requests: list[Any] = []

    def write(rows: np.ndarray, x: np.ndarray, status: np.ndarray, bold: Any) -> None:
        nonlocal write_s
        tw = time.monotonic()
        w.write(rows, x, status, bold)
        write_s += time.monotonic() - tw

    def drain(block: bool) -> None:  # rank 0 in root mode: write rows sent by the other ranks
        nonlocal finished_ranks
        from mpi4py import MPI

        st = MPI.Status()
        while finished_ranks < nranks - 1 and (block or comm.Iprobe(source=MPI.ANY_SOURCE, status=st)):
            msg = comm.recv(source=MPI.ANY_SOURCE, status=st)
            if st.Get_tag() == TAG_DONE:
                finished_ranks += 1
            else:
                write(*msg)

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
            keep_bold = bold if w.has_bold else None
            if mode == "root" and rank != 0:
                requests.append(comm.isend((rows, x, status, keep_bold), dest=0, tag=TAG_ROWS))
            else:
                write(rows, x, status, keep_bold)
            flagged = int(np.sum(dominated_by_startup(bold[status == store.OK], setup.engine.tr_ms))) \
                if (status == store.OK).any() else 0
            if flagged and not n_trend:
                log.warning("rank %d: the BOLD of %d of %d rows of a batch is dominated (> %.0f %% of its "
                            "variance) by a slow relaxation common to all regions, typically a start-up "
                            "artefact (see bold.start, bold.transient)", rank, flagged, rows.size,
                            100 * TREND_THRESHOLD)
            n_trend += flagged
            n_div = int(np.sum(status == store.DIVERGED))
            counter.add_done(rows.size, n_div)
            if rank == 0:
                if mode == "root":
                    drain(block=False)
                done, diverged = counter.read()
                bar.update(done, diverged)
        if mode == "root":
            if rank == 0:
                drain(block=True)
            else:
                for r in requests:
                    r.wait()
                comm.send(None, dest=0, tag=TAG_DONE)
        stopped = mpi.agree(stop.received is not None)
        done, diverged = counter.read() if rank == 0 else (0, 0)
        bar.update(done, diverged, force=True)
        bar.close()
        counter.free()
        worklist.free()
        thetas.close()
        wall = time.monotonic() - t0
        write_all = comm.gather(write_s, root=0)
        trend_all = comm.gather(n_trend, root=0)
        hosts = comm.gather(mpi.hostname(), root=0)
        peak_mb = comm.gather(peak_rss_mb(), root=0)
        record = None
        if rank == 0:
            counts = count_status(w.status() if w.f is not None else None, path)
            record = {
                "kind": what, "ranks": nranks, "hosts": sorted(set(hosts)), "start": started,
                "end": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "rows_done": done,
                "rows_diverged": diverged, "wall_seconds": round(wall, 3), "stopped_by_signal": stopped,
                "writer": mode, "write_seconds_max": round(max(write_all), 4), "batch_size": B,
                "threads": threads, "peak_rss_mb": peak_mb, "worklist_bytes_rank0": worklist.nbytes_on_root,
                "command": " ".join(sys.argv), "counts": counts, "rows_common_trend": int(sum(trend_all)),
            }
            if record["rows_common_trend"]:
                log.warning("%d of %d rows of this session have BOLD dominated by a common start-up "
                            "relaxation: their FC measures it, not the network (see the report)",
                            record["rows_common_trend"], done)
        record = comm.bcast(record, root=0)
        w.add_session(record)
    except BaseException:
        # An mpio file's close is collective: a rank failing alone would hang there. Abort the job instead
        # (the failing rank's traceback is printed; finished rows are already in the file).
        if nranks > 1:
            mpi.abort_on_exception(*sys.exc_info())
        raise
    w.close()
    return Outcome(record["rows_done"], record["counts"].get("pending", 0), record["stopped_by_signal"],
                   record["wall_seconds"], record["counts"])


def simulate_batch(setup: Any, theta: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
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
