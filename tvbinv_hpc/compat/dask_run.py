"""``run_dask``: ``run_local``'s store and rows, simulated as tasks on a ``dask.distributed`` cluster.

The process that calls ``run_dask`` (the dask client) owns the store: it creates or checks it exactly as
``run_local`` does (the same store view, so the two, and ``run_mpi``, resume each other's files), submits
every batch of pending rows as one task, and writes each batch as its task completes, data before status.
A run that is interrupted (the client killed, the cluster lost) leaves its finished rows and is resumed by
calling again.  Rows are a pure function of (seq, seed, row index), so which worker ran a batch, and how
the rows were batched, never changes a bit.

Workers get the seq, metrics and build settings once and rebuild the engine and features from them, once
per worker process (``_worker_setup``).  Rebuilding costs milliseconds and checks the worker: one whose
library versions give another store view than the client's (rows that would differ) is refused.

dask is an optional dependency (``pip install tvbinv_hpc[dask]``), imported only when ``run_dask`` runs.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tvbinv_hpc.compat.model import SimSeq
from tvbinv_hpc.compat.run import RunSummary, all_rows_x, build, ensure_store, front_arguments
from tvbinv_hpc.errors import TvbinvError
from tvbinv_hpc.parallel import driver, mpi, store
from tvbinv_hpc.parallel.job import Job
from tvbinv_hpc.parallel.progress import Progress

log = logging.getLogger("tvbinv_hpc")
INSTALL_HINT = "pip install 'tvbinv_hpc[dask]'"


@dataclass
class _Job:
    """What a worker needs to rebuild the client's setup; sent once per run, as the result of a task."""

    token: str
    seq: SimSeq
    metrics: Any
    build_kw: dict[str, Any]
    view: dict[str, Any]
    threads: int


# Per worker process: the setups of the latest runs, by job token.  A worker serves a run's batches with
# one setup; a couple of entries cover a client that runs two stores one after the other on one cluster.
_SETUPS: dict[str, Job] = {}
_SETUPS_KEEP = 2
_SETUPS_LOCK = threading.Lock()  # a worker's threads share the cache: build a run's setup once


def _job(job: _Job) -> _Job:
    return job


def _worker_setup(job: _Job) -> Job:
    with _SETUPS_LOCK:
        s = _SETUPS.get(job.token)
        if s is None:
            from tvbinv_hpc.config import changed_keys

            s, view = build(job.seq, job.metrics, **job.build_kw)
            if view != job.view:  # e.g. another tvbinv_hpc or TVB version: its rows would differ from the client's
                raise TvbinvError(f"dask worker on {mpi.hostname()} builds a different run than the client "
                                  f"(differs in: {', '.join(changed_keys(job.view, view)) or '(unknown)'}): "
                                  "install the same tvbinv_hpc and tvb-library versions on the workers")
            s.engine.threads = job.threads
            while len(_SETUPS) >= _SETUPS_KEEP:
                _SETUPS.pop(next(iter(_SETUPS)))
            _SETUPS[job.token] = s
        return s


def _simulate_task(job: _Job, rows: np.ndarray, theta: np.ndarray,
                   keep_bold: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any, int, str]:
    """One batch on a worker: (rows, x, status, bold or None, rows with start-up-dominated BOLD, host)."""
    from tvbinv_hpc.stats.quality import dominated_by_startup

    s = _worker_setup(job)
    x, status, bold = driver.simulate_batch(s, theta, rows)
    ok = status == store.OK
    trend = int(np.sum(dominated_by_startup(bold[ok], s.engine.tr_ms))) if ok.any() else 0
    return rows, x, status, (bold if keep_bold else None), trend, mpi.hostname()


def _dask_threads(n_jobs: int | None) -> int:
    """Engine threads inside one task: 1 unless asked; the workers' own threads are the parallelism, so
    joblib's "every core" (-1, ...) would oversubscribe a worker running several tasks."""
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise TvbinvError(f"n_jobs must be a positive integer or None for run_dask (engine threads inside each "
                          f"task; give the dask workers threads for more parallelism), got {n_jobs!r}")
    return int(n_jobs)


def _distributed(client: Any) -> Any:
    try:
        import distributed
    except ImportError:
        raise TvbinvError(f"run_dask needs dask.distributed, which is not installed: {INSTALL_HINT}") from None
    if not isinstance(client, distributed.Client):
        raise TvbinvError("run_dask needs a dask.distributed Client as its third argument (e.g. "
                          f"Client(LocalCluster()) or Client(SLURMCluster(...))), got {type(client).__name__}")
    if client.status != "running":
        raise TvbinvError(f"the dask client is {client.status}, not running: connect it to a cluster first")
    return distributed


def run_dask(seq: SimSeq, metrics: Any, client: Any, filename: str | os.PathLike = "results",
             reduction: Any = None, backend: Any = None, checkpoint_dir: str | os.PathLike | None = None,
             n_jobs: int | None = None, *, batch_size: int = 4, ms_per_unit: float = 10.0,
             bold_tr: float = 2000.0, bold_transient: float = 0.0, tavg_period: float | None = None,
             save_bold: bool = False, test_fraction: float = 0.0, progress: str = "auto",
             progress_interval: float = 10.0) -> RunSummary:
    """Simulate every pending row of the store ``filename`` as tasks on the dask cluster of ``client``.

    Parameters
    ----------
    seq, metrics, filename, reduction, backend, checkpoint_dir
        As ``run_local`` (tvb-inversion's ``run_dask(seq, metrics, client, filename, reduction, backend,
        checkpoint_dir)`` order): the same store at ``filename``, the same rows bit for bit; calling again
        resumes it, and ``run_local`` / ``run_mpi`` can resume it too.
    client
        A connected ``dask.distributed.Client``.  This process writes the store; the workers only simulate,
        so they need tvbinv_hpc (the same version) but no access to the file and no MPI.
    n_jobs
        Engine threads inside each task (default 1: the workers' threads run tasks side by side).
    batch_size
        Rows per task (rounded up to whole lane groups when ``n_jobs`` > 1); never changes the results.
    ms_per_unit, bold_tr, bold_transient, tavg_period, save_bold, test_fraction, progress, progress_interval
        As ``run_mpi``.

    Returns
    -------
    RunSummary
        The rows done in this call and the store's counts; also the store's path.

    Raises
    ------
    TvbinvError
        A bad argument, dask not installed, a store made by another run, or a worker that builds a
        different run (another tvbinv_hpc version); a failing task's exception is re-raised after the
        finished rows are written.
    """
    distributed = _distributed(client)
    path = front_arguments("run_dask", filename, reduction, backend, checkpoint_dir)
    if not isinstance(seq, SimSeq):
        raise TvbinvError(f"run_dask needs a SimSeq (sbi_model.generate_sim_seq(n)), got {type(seq).__name__}")
    threads = _dask_threads(n_jobs)
    kw = dict(batch_size=batch_size, ms_per_unit=ms_per_unit, bold_tr=bold_tr, bold_transient=bold_transient,
              tavg_period=tavg_period, save_bold=save_bold, test_fraction=test_fraction)
    s, view = build(seq, metrics, **kw)
    ensure_store(s, seq, path, view)
    s.engine.threads = threads
    B = s.engine.rows_per_batch(s.batch_size)  # as the driver batches: whole lane groups for every thread

    t0 = time.monotonic()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    status, _ = store.read_columns(path)
    todo = np.flatnonzero(status == store.PENDING)
    theta = store.read_theta(path, todo)
    w = store.Writer(path, mpi.SerialComm(), "serial")  # no MPI in the client: it is the only writer
    bar = Progress(status.size, status.size - todo.size, progress, progress_interval, "sims",
                   already_diverged=int(np.sum(status == store.DIVERGED)))
    tally = _Tally()
    try:
        if todo.size:
            _run_tasks(distributed, client, _Job(uuid.uuid4().hex, seq, metrics, kw, view, threads), todo, theta, B,
                       w, bar, tally)
    finally:
        # whatever ended the loop: cancel what is left, then record the session with what was written
        error = sys.exc_info()[1]
        _cancel(client, tally.remaining)
        bar.update(tally.done, tally.diverged, force=True)
        bar.close()
        counts = driver.count_status(w.status(), path)
        wall = time.monotonic() - t0
        try:
            w.add_session(_session_record(client, tally, started=started, wall=wall, error=error, batch_size=B,
                                          threads=threads, counts=counts))
        finally:
            w.close()
    done, trend = tally.done, tally.trend
    if trend:
        log.warning("%d of %d rows of this session have BOLD dominated by a common start-up relaxation: their "
                    "FC measures it, not the network (see the report)", trend, done)
    if reduction is not None and not counts["pending"]:
        reduction(all_rows_x(path))
    return RunSummary(path, counts, done, counts["pending"], False, wall)


@dataclass
class _Tally:
    """What this call's written batches add up to, for the progress bar and the session record."""

    done: int = 0
    diverged: int = 0
    trend: int = 0        # rows whose BOLD is dominated by a common start-up relaxation
    hosts: set[str] = field(default_factory=set)
    remaining: set[Any] = field(default_factory=set)   # tasks not yet written: cancelled if the loop stops


def _run_tasks(distributed: Any, client: Any, recipe: _Job, todo: np.ndarray, theta: np.ndarray, B: int,
               w: store.Writer, bar: Progress, tally: _Tally) -> None:
    """Submit the rows ``todo`` as tasks of ``B`` rows and write each batch as it completes."""
    # A task, not scattered data: if the workers holding it leave (an adaptive or SLURM cluster), the
    # scheduler recomputes it from the graph, where scattered data would be lost with them.
    job = client.submit(_job, recipe, pure=False)
    futures = [client.submit(_simulate_task, job, todo[i:i + B], theta[i:i + B], w.has_bold, pure=False)
               for i in range(0, todo.size, B)]
    log.info("simulating %d rows as %d dask tasks on %d worker(s), %d engine thread(s) per task",
             todo.size, len(futures), len(client.nthreads()), recipe.threads)
    tally.remaining.update(futures)
    batches = distributed.as_completed(futures)
    del futures  # a written batch's last reference goes with it: the worker frees its result
    for fut in batches:
        rows, x, st, bold, n_trend, host = fut.result()  # a task's exception is raised here
        w.write(rows, x, st, bold)
        tally.remaining.discard(fut)
        tally.done += rows.size
        tally.diverged += int(np.sum(st == store.DIVERGED))
        if n_trend and not tally.trend:
            log.warning("the BOLD of %d of %d rows of a batch is dominated by a slow relaxation common "
                        "to all regions, typically a start-up artefact (see bold.start, bold.transient)",
                        n_trend, rows.size)
        tally.trend += n_trend
        tally.hosts.add(host)
        bar.update(tally.done, tally.diverged)


def _cancel(client: Any, remaining: set[Any]) -> None:
    if remaining and client.status == "running":
        try:
            client.cancel(list(remaining))
        except Exception:  # pragma: no cover - a lost scheduler drops the tasks anyway
            log.warning("could not cancel the remaining dask tasks of this run")


def _session_record(client: Any, tally: _Tally, *, started: str, wall: float, error: BaseException | None,
                    batch_size: int, threads: int, counts: dict[str, int]) -> dict[str, Any]:
    """The store's record of this call (also when it failed: then with the error)."""
    try:
        nthreads = client.nthreads()
    except Exception:  # the scheduler is gone: still record the session, and keep the original error
        nthreads = {}
    record = {
        "kind": "sims", "backend": "dask", "ranks": 1, "workers": len(nthreads),
        "worker_threads": int(sum(nthreads.values())), "hosts": sorted(tally.hosts) or [mpi.hostname()],
        "start": started, "end": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows_done": tally.done, "rows_diverged": tally.diverged, "wall_seconds": round(wall, 3),
        "stopped_by_signal": isinstance(error, KeyboardInterrupt), "writer": "dask client",
        "batch_size": batch_size, "threads": [threads], "command": " ".join(sys.argv), "counts": counts,
        "rows_common_trend": tally.trend,
    }
    if error is not None:
        record["error"] = f"{type(error).__name__}: {error}"
    return record
