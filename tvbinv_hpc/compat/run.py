"""``run_local`` / ``run_mpi``: a SimSeq and metrics -> the same HDF5 store as ``tvbinv-hpc simulate``.

Both are the simulate phase of the CLI with a different front: the engine comes from the seq's TVB template
(``Engine.from_tvb``), the store is made by ``store.create`` with the seq's theta, and the rows are computed
by ``driver.run_rows``.  So the file restarts like any store: calling again completes the pending rows, and
a store made from another seq, template, metrics or run setting is refused, naming what changed.

The store goes where tvb-inversion put its results, at ``filename`` relative to the working folder, even
when that name ends in ``.npy``: one file is both the results and the restart state, and
``load_summary_stats(filename)`` reads it.  (tvb-inversion's ``.npy`` held a pickled object array with the
BOLD of every simulation; code that indexed it directly needs ``load_summary_stats`` instead.)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tvbinv_hpc.compat.metrics import MetricFeatures
from tvbinv_hpc.compat.model import SimSeq
from tvbinv_hpc.errors import ConfigError, InputError, TvbinvError, UnsupportedError
from tvbinv_hpc.parallel import driver, job, mpi, store
from tvbinv_hpc.parallel.job import Job

log = logging.getLogger("tvbinv_hpc")
# Engine config keys -> the run_local argument that sets them (errors name what the user typed).
_ARGS = {"bold.tr": "bold_tr", "bold.tavg_period": "tavg_period", "bold.transient": "bold_transient",
         "simulation.ms_per_unit": "ms_per_unit"}


@dataclass
class RunSummary(os.PathLike):
    """What a run did; usable as the store's path (``os.fspath(summary)``, ``load_summary_stats(summary)``).

    Attributes
    ----------
    path
        The store.
    counts
        The store's rows by status after the call: ok, diverged, error, pending.
    rows_done
        Rows finished in this call.
    pending
        Rows still pending (non-zero only when stopped).
    stopped
        Stopped by a signal (SIGTERM / SIGUSR1) before every row was done; call again to finish.
    wall
        Seconds the call took.
    """

    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    rows_done: int = 0
    pending: int = 0
    stopped: bool = False
    wall: float = 0.0

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def _val(a: Any) -> Any:
    """A parameter for the store view: a scalar when uniform, a short list, else a digest."""
    v = np.asarray(a, dtype=np.float64).ravel()
    if v.size and (v == v[0]).all():
        return float(v[0])
    if v.size <= 4:
        return [float(x) for x in v]
    return "sha256:" + hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16]


def _numeric(obj: Any, keys: Any = None) -> dict[str, Any]:
    """A TVB object's numeric declarative attributes (or ``keys``) for the store view."""
    names = keys if keys is not None else getattr(type(obj), "declarative_attrs", ())
    out = {}
    for k in names:
        v = getattr(obj, k, None)
        if v is not None and np.issubdtype(np.asarray(v).dtype, np.number) and k != "noise_seed":
            out[k] = _val(v)
    return out


def describe_simulator(sim: Any, engine: str = "numba") -> dict[str, Any]:
    """The template's settings that the engine reads (configured or not, the same description).  For the
    numba engine the MPR keys it reads (the description older stores were made with); for TVB's simulator
    (``engine="tvb"``) every numeric parameter of the model, coupling and noise."""
    from tvbinv_hpc.sim.params import MODEL_KEYS

    integ, conn = sim.integrator, sim.connectivity
    noise = getattr(integ, "noise", None)
    every = engine != "numba"
    model = _numeric(sim.model, None if every else MODEL_KEYS)
    coupling = _numeric(sim.coupling, None if every else ("a", "b"))
    out = {
        "model": type(sim.model).__name__, **{f"model.{k}": v for k, v in model.items()},
        "coupling": type(sim.coupling).__name__, **{f"coupling.{k}": v for k, v in coupling.items()},
        "integrator": type(integ).__name__, "integrator.dt": float(integ.dt),
        "integrator.noise": type(noise).__name__ if noise is not None else "none",
        "integrator.noise.nsig": _val(noise.nsig) if noise is not None else 0.0,
        "simulation_length": float(sim.simulation_length),
        "connectivity.weights": _val(conn.weights), "connectivity.tract_lengths": _val(conn.tract_lengths),
        "connectivity.speed": _val(conn.speed), "n_regions": int(np.asarray(conn.weights).shape[0]),
        "monitors": [f"{type(m).__name__}({float(getattr(m, 'period', 0.0))})" for m in sim.monitors],
        "initial_conditions": "random" if sim.initial_conditions is None else _val(sim.initial_conditions),
    }
    if every:
        out["model.variables_of_interest"] = [str(v) for v in sim.model.variables_of_interest]
        out.update({f"integrator.noise.{k}": v for k, v in _numeric(noise).items() if k != "nsig"}
                   if noise is not None else {})
        if getattr(sim, "stimulus", None) is not None:
            out["stimulus"] = repr(sim.stimulus)
    return out


def store_path(filename: str | os.PathLike) -> Path:
    """Where the store goes: ``filename`` as given (relative to the working folder, as tvb-inversion's
    ``np.save(filename)``); a name without a suffix gets ``.npy``, as np.save gave it, so that the
    default ``'results'`` is found again as ``'results.npy'``."""
    path = Path(os.fspath(filename))
    if not str(path) or path.name in ("", ".", ".."):
        raise TvbinvError(f"filename must name a file, got {filename!r}")
    return path if path.suffix else path.with_name(path.name + ".npy")


def refuse_numpy_file(path: str | os.PathLike) -> None:
    """A real .npy at the store's name (results that tvb-inversion itself wrote, say) is left alone and
    named, rather than reported as a damaged HDF5 file."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError:
        return
    if magic == b"\x93NUMPY":
        raise InputError(f"{os.fspath(path)} is a numpy .npy file (as tvb-inversion's run_local wrote), not a "
                         "tvbinv_hpc store: it is left as it is. Read it with np.load(..., allow_pickle=True), "
                         "or give run_local another filename for tvbinv_hpc's results.")


# Settings whose refusal by the numba engine sends the template to TVB's simulator (they change the
# dynamics); the others (monitors, surface) are refused by both engines.
_TO_TVB = ("model", "coupling", "integrator", "integrator.noise", "integrator.noise.ntau", "connectivity.speed",
           "stimulus")


def make_engine(seq: SimSeq, **kw: Any) -> tuple[Any, str]:
    """The numba Engine for the seq's template, or TVB's simulator (TVBEngine) where the numba engine cannot
    simulate it; with the reason for the latter ('' for the numba engine).  ConfigError: a bad setting."""
    from tvbinv_hpc.sim import PARAMETERS, Engine
    from tvbinv_hpc.sim.tvb_engine import TVBEngine

    try:
        engine = Engine.from_tvb(seq.template, seed=seq.seed, **kw)
        other = [p for p in seq.params if p not in PARAMETERS]
        if not other:
            return engine, ""
        why = f"it does not vary {', '.join(other)}"
    except UnsupportedError as exc:
        if exc.setting not in _TO_TVB:
            raise
        why = str(exc)
    return TVBEngine(seq.template, seed=seq.seed, **kw), why


def build(seq: SimSeq, metrics: Any, *, batch_size: int, ms_per_unit: float, bold_tr: float,
          bold_transient: float, tavg_period: float | None, save_bold: bool,
          test_fraction: float, announce: bool = True) -> tuple[Job, dict[str, Any]]:
    """Engine + features for this seq, and the store view that identifies the run (raises TvbinvError).
    ``announce``: log which engine runs (with TVB's simulator, after a short probe of its speed)."""
    from tvbinv_hpc.sim.defaults import NUMERICS

    if not isinstance(seq, SimSeq):
        raise TvbinvError(f"run_local needs a SimSeq (sbi_model.generate_sim_seq(n)), got {type(seq).__name__}")
    if int(batch_size) < 1:
        raise TvbinvError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise TvbinvError(f"test_fraction must be in [0, 1), got {test_fraction}")
    try:
        engine, why = make_engine(seq, ms_per_unit=float(ms_per_unit), tavg_period=tavg_period,
                                  bold_tr=float(bold_tr), bold_transient=float(bold_transient))
        features = MetricFeatures(metrics, engine.n_regions, engine.tr_ms, engine.bold_times_ms)
    except ConfigError as exc:
        raise TvbinvError(f"{_ARGS.get(exc.key, exc.key)}: {exc.message}") from None
    if engine.n_bold < features.min_samples:
        raise TvbinvError(f"the metrics need at least {features.min_samples} BOLD samples (burn-in and windows) "
                          f"but each simulation gives {engine.n_bold}: lengthen the template's "
                          "simulation_length or shorten bold_tr / bold_transient")
    kind = getattr(engine, "kind", "numba")
    if kind != "numba" and announce:
        sec = engine.seconds_per_simulation()
        log.warning("%s is simulated with TVB's own simulator, not the numba engine (%s): one row at a time "
                    "per rank, ~%.2g s per simulation here, ~%.2g h for %d rows on one rank (BOLD: the "
                    "Balloon model on the temporal average of %s%s)", type(seq.template.model).__name__, why,
                    sec, sec * len(seq) / 3600.0, len(seq), engine.voi_name,
                    f"; the template's {', '.join(engine.unused_monitors)} monitors are not run"
                    if engine.unused_monitors else "")
    engine_view = {"numerics": NUMERICS, "seed": seq.seed, "ms_per_unit": float(ms_per_unit),
                   "bold_tr": float(bold_tr), "bold_transient": float(bold_transient),
                   "tavg_period": engine.tavg_period, "tr_ms": engine.tr_ms, "n_bold": engine.n_bold}
    if kind != "numba":   # the numba engine's view stays as older stores have it, so they resume
        engine_view.update(engine.describe())
    view = {
        "api": "tvbinv_hpc.compat.run_local",
        "simulator": {k: v for k, v in describe_simulator(seq.template, kind).items() if k not in seq.params},
        "engine": engine_view,
        "prior": seq.prior.describe(),
        "seq": {"n": len(seq), "seed": seq.seed, "theta_sha256": seq.theta_hash()},
        "metrics": features.specs(), "burn_in": features.burn_in,
        "store": {"save_bold": bool(save_bold), "test_fraction": float(test_fraction)},
    }
    view = json.loads(json.dumps(view, default=str))  # plain types: identical before and after a reload
    return Job(view, engine, features, seq.prior, int(batch_size), seed=seq.seed, output=Path.cwd()), view


# A refused restart names run_local's arguments, not config keys.
_REFUSAL = store.Refusal(
    other_numerics="{path} was made by another version of the simulator (its rows differ in their last bits): "
                   "finish it with that version, or use another filename.",
    other_run="{path} was made by a different run; changed: {changed}. Use the same seq, metrics and settings "
              "to resume it, or another filename.")


def ensure_store(s: Job, seq: SimSeq, path: Path, view: dict[str, Any]) -> None:
    """Create the store of this seq at ``path``, or check that the file there is one (and resume it)."""
    from tvbinv_hpc.config import dumps, view_hash

    chash = view_hash(view)
    refuse_numpy_file(path)

    def layout() -> store.Layout:
        return s.layout(seq.values, job.held_out_split(len(seq), view["store"]["test_fraction"]),
                        save_bold=view["store"]["save_bold"], config_text=dumps(view), config_hash=chash,
                        store_view=view)

    if not job.ensure_store(path, layout, config_hash=chash, store_view=view, refusal=_REFUSAL):
        log.info("resuming %s", path)


def run_mpi(seq: SimSeq, metrics: Any, filename: str | os.PathLike = "results", reduction: Any = None,
            backend: Any = None, checkpoint_dir: str | os.PathLike | None = None, n_jobs: int | None = None, *,
            batch_size: int = 4, ms_per_unit: float = 10.0, bold_tr: float = 2000.0, bold_transient: float = 0.0,
            tavg_period: float | None = None, save_bold: bool = False, test_fraction: float = 0.0,
            progress: str = "auto", progress_interval: float = 10.0, writer: str = "auto") -> RunSummary:
    """Simulate every pending row of the store ``filename`` on all MPI ranks (collective: every rank
    calls it with the same arguments).  Checks run on rank 0 and every rank raises the same TvbinvError.

    Parameters
    ----------
    seq
        The simulations (``sbi_model.generate_sim_seq(n)``).
    metrics
        A metric or a list of them (``BoldFCDForSBI()``, ``Metric('fc_stats')``, or tvb-inversion's
        callables ``metric(t, y) -> list[float]``): the columns of the summary statistics, in order.
    filename
        Where the HDF5 store goes, relative to the working folder (a name without suffix gets ``.npy``,
        see ``store_path``).  The positional order is tvb-inversion's ``run_local(seq, metrics, filename,
        reduction, backend, checkpoint_dir, n_jobs)``.
    reduction
        Called on rank 0, once every row is done, with the ``(n, k)`` summary statistics in seq order (NaN
        rows: diverged or failed), as tvb-inversion's reductions were.
    backend
        Accepted for tvb-inversion scripts and ignored: the numba engine runs MPR templates, TVB's own
        simulator the others (logged, with its speed; see tvbinv_hpc.sim.tvb_engine).
    checkpoint_dir
        tvb-inversion's folder of per-simulation checkpoints: accepted and unused (the store is its own
        checkpoint).
    n_jobs
        Simulation threads per process, as joblib counts them (-1: every core this process may use, -2:
        all but one, ...); None: the cores this rank owns (all local cores without a launcher, or
        NUMBA_NUM_THREADS when set).  Like ``batch_size`` it never changes the results.
    batch_size
        Simulations per batch taken from the shared counter.
    ms_per_unit
        ms per model time unit (tvb-inversion's MPR: 10).
    bold_tr, bold_transient
        BOLD sampling period, and BOLD dropped at the start, in ms.
    tavg_period
        Defaults to the template's TemporalAverage period.
    save_bold
        Also store every simulation's BOLD.
    test_fraction
        Fraction of rows (the last ones) held out as the test split.
    progress, progress_interval, writer
        As ``[run] progress``, ``progress_interval`` and ``[store] writer`` of a config.

    Returns
    -------
    RunSummary
        The rows done in this call and the store's counts; also the store's path.

    Raises
    ------
    TvbinvError
        A bad argument, or a store made by another run (naming what changed).
    """
    path = front_arguments("run_local", filename, reduction, backend, checkpoint_dir)
    kw = dict(batch_size=batch_size, ms_per_unit=ms_per_unit, bold_tr=bold_tr, bold_transient=bold_transient,
              tavg_period=tavg_period, save_bold=save_bold, test_fraction=test_fraction)
    built: dict[str, Any] = {}

    def check() -> None:
        setup, view = built["s"] = build(seq, metrics, **kw)
        ensure_store(setup, seq, path, view)

    threads = _threads(n_jobs)
    mpi.decide(check)
    s, _ = built.get("s") or build(seq, metrics, **kw, announce=False)   # rank 0 announced it
    s.engine.threads = threads
    out = driver.run_rows(s, path, progress=progress, interval=progress_interval, writer=writer)
    if out.pending and not out.stopped:  # pragma: no cover - the driver finishes unless signalled
        raise TvbinvError(f"{out.pending} rows still pending after the session")
    if out.stopped and mpi.rank() == 0:
        log.warning("stopped by signal with %d rows pending: call run_local again to finish", out.pending)
    if reduction is not None and not out.pending and mpi.rank() == 0:
        reduction(all_rows_x(path))
    return RunSummary(path, out.counts, out.rows_done, out.pending, out.stopped, out.wall)


def front_arguments(api: str, filename: str | os.PathLike, reduction: Any, backend: Any,
                    checkpoint_dir: str | os.PathLike | None) -> Path:
    """tvb-inversion's run_* arguments that tvbinv_hpc accepts but reads differently: the store's path."""
    if backend is not None:
        log.info("%s: backend=%r ignored; tvbinv_hpc picks the engine from the template", api, backend)
    path = store_path(filename)
    if checkpoint_dir is not None:
        log.info("%s: checkpoint_dir=%r unused; %s is its own checkpoint (calling again resumes it)",
                 api, os.fspath(checkpoint_dir), path)
    if reduction is not None and not callable(reduction):
        raise TvbinvError(f"reduction must be callable (it gets the (n, k) summary statistics), got {reduction!r}")
    return path


def all_rows_x(path: str | os.PathLike) -> np.ndarray:
    """The summary statistics of every row in seq order, NaN where a row is not ok (diverged, failed,
    pending): the matrix tvb-inversion's run_local handed to its reduction."""
    rows = store.read_rows(path, ok_only=True)
    x = np.full((len(rows["status"]), len(rows["feature_names"])), np.nan)
    x[rows["index"]] = rows["x"]
    return x


def _threads(n_jobs: int | None) -> int | str:
    """joblib's n_jobs -> the engine's thread count."""
    if n_jobs is None:
        return "auto"
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise TvbinvError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    return int(n_jobs) if n_jobs > 0 else max(1, mpi.available_cores() + 1 + int(n_jobs))


def run_local(seq: SimSeq, metrics: Any, filename: str | os.PathLike = "results", reduction: Any = None,
              backend: Any = None, checkpoint_dir: str | os.PathLike | None = None, n_jobs: int | None = None,
              **kwargs: Any) -> RunSummary:
    """``run_mpi`` in this one process, with tvb-inversion's signature.

    Parameters
    ----------
    seq, metrics, filename, reduction, backend, checkpoint_dir, n_jobs, **kwargs
        As ``run_mpi``: the store is ``filename`` (relative to the working folder; calling again resumes an
        interrupted run), simulated on every local core unless ``n_jobs`` says otherwise.

    Returns
    -------
    RunSummary
        What the call did; also the store's path.
    """
    hook = sys.excepthook  # mpi.comm() installs an abort-the-job hook; a notebook or REPL must keep its own
    try:
        return run_mpi(seq, metrics, filename, reduction, backend, checkpoint_dir, n_jobs, **kwargs)
    finally:
        if mpi.size() == 1:
            sys.excepthook = hook
