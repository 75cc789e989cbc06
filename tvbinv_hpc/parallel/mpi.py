"""Communicator, abort hook, rank-0 decisions broadcast to all ranks, signals, thread pinning.

MPI is initialised lazily so that serial verbs (status, inspect, init) need no launcher. Every branch that
leads into a collective call is decided on rank 0 and broadcast (``decide``), so a rank never waits alone.
An unexpected exception on any rank prints that rank's traceback and aborts the whole job: never a hang.
"""
from __future__ import annotations

import contextlib
import numbers
import os
import re
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from tvbinv_hpc.errors import TvbinvError

T = TypeVar("T")
_COMM: Any = None
_HOOKED = False


class SerialComm:
    """The subset of ``MPI.Comm`` we use, for a process without an MPI library."""

    rank = 0
    size = 1

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def bcast(self, obj: T, root: int = 0) -> T:
        return obj

    def allreduce(self, obj: T, op: Any = None) -> T:
        return obj

    def gather(self, obj: T, root: int = 0) -> list[T]:
        return [obj]

    def allgather(self, obj: T) -> list[T]:
        return [obj]

    def Barrier(self) -> None:
        return None

    def barrier(self) -> None:
        return None

    def Abort(self, code: int = 1) -> None:
        os._exit(code)


def local_size() -> int:
    """Ranks on this node, read from the launcher's environment (valid before MPI_Init)."""
    for var in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"):
        val = os.environ.get(var, "")
        if val.isdigit() and int(val) > 0:
            return int(val)
    if _srun_step():
        n = _slurm_node_entry("SLURM_STEP_TASKS_PER_NODE")
        if n:
            return n
    for var in ("SLURM_NTASKS_PER_NODE", "PMI_LOCAL_SIZE"):
        val = os.environ.get(var, "").split("(")[0]
        if val.isdigit() and int(val) > 0:
            return int(val)
    return 1


def _srun_step() -> bool:
    """This process is a task that srun started itself (not a rank that mpiexec started inside a job)."""
    e = os.environ
    return "SLURM_STEP_ID" in e and not any(v in e for v in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                                              "HYDI_CONTROL_FD"))


def _slurm_node_entry(var: str) -> int | None:
    """This node's entry of a SLURM per-node list such as SLURM_STEP_TASKS_PER_NODE="4(x2),3"."""
    counts: list[int] = []
    for part in os.environ.get(var, "").split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if m is None:
            return None
        counts += [int(m[1])] * int(m[2] or 1)
    node = os.environ.get("SLURM_NODEID", "0")
    i = int(node) if node.isdigit() else 0
    return counts[i] if i < len(counts) and counts[i] > 0 else None


def _slurm_cores_per_task() -> int:
    """Under srun: SLURM_CPUS_PER_TASK, else the CPUs SLURM gave this node shared among the step's tasks
    on it; 1 when unknown (task/none leaves every task the whole node's affinity mask)."""
    cpt = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if cpt.isdigit() and int(cpt) > 0:
        return int(cpt)
    tasks = _slurm_node_entry("SLURM_STEP_TASKS_PER_NODE")
    cpus_on_node = os.environ.get("SLURM_CPUS_ON_NODE", "")
    cpus = int(cpus_on_node) if cpus_on_node.isdigit() else _slurm_node_entry("SLURM_JOB_CPUS_PER_NODE")
    if tasks and cpus:
        return max(1, cpus // tasks)
    return 1


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask (a cpuset, a launcher's binding), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def cores_per_rank() -> int:
    """Cores this rank owns: under srun what SLURM allotted per task, else its CPU affinity shared among
    the ranks of the node (all of it without a launcher)."""
    ncpu = available_cores()
    if _srun_step():
        return max(1, min(ncpu, _slurm_cores_per_task()))
    # A launcher that binds ranks already shrank the affinity mask; then the division gives >= 1 anyway.
    return max(1, ncpu // local_size()) if ncpu > 1 else 1


def node_cpus() -> set[int]:
    """Collective: the CPUs that the ranks on this rank's node may use together (the union of their
    affinity masks: the cores a binding launcher or SLURM's cgroup gave the job on this node)."""
    try:
        mine = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS: no masks
        mine = list(range(os.cpu_count() or 1))
    host = hostname()
    return {cpu for h, cpus in comm().allgather((host, mine)) if h == host for cpu in cpus}


@contextlib.contextmanager
def cpus(allowed: set[int]) -> Iterator[None]:
    """Inside, this thread (and the threads it starts, e.g. torch's) may run on ``allowed``.

    Rank 0 trains and samples while the other ranks sleep: under a launcher that binds each rank to a
    core, it would otherwise train on one core of a node the job owns."""
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, allowed)
    except (AttributeError, OSError):  # no affinity API, or CPUs outside this process's cpuset
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _env_count(var: str) -> int | None:
    val = os.environ.get(var, "").strip()
    return int(val) if val.isdigit() and int(val) > 0 else None


def threads_per_rank(setting: int | str | None = "auto") -> int:
    """Simulation threads of this process: ``setting`` when it is a positive count; "auto" (or None/0):
    NUMBA_NUM_THREADS when set (by the user, a job script, or ``pin_threads`` at start-up), else the
    cores this rank owns (``cores_per_rank``). The one place where a thread count is decided."""
    if setting not in (None, "auto", 0):
        if isinstance(setting, bool) or not isinstance(setting, numbers.Integral) or setting < 1:
            raise ValueError(f"threads must be a positive integer or 'auto', got {setting!r}")
        return int(setting)
    return _env_count("NUMBA_NUM_THREADS") or cores_per_rank()


def pin_threads(n: int | None = None) -> int:
    """Set OMP/MKL/OpenBLAS/numba thread counts before those libraries load (torch is set when imported);
    variables already set (job scripts, the user) win. Returns the simulation threads of this rank.

    Oversubscription (each rank using every core) made sbi training ~100x slower on a 2-core machine.
    """
    n = n or cores_per_rank()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if _env_count(var) is None:
            os.environ[var] = str(n)
    return threads_per_rank()


def under_launcher() -> bool:
    keys = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_ID", "MPI_LOCALNRANKS", "HYDI_CONTROL_FD")
    return any(k in os.environ for k in keys)


_PMI_VARS = ("PMIX_RANK", "PMI_RANK", "PMI_FD", "PMI_SIZE", "PMI_CONTROL_PORT", "PALS_RANKID",
             "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "HYDI_CONTROL_FD")


def srun_without_pmi() -> bool:
    """srun started several tasks without any PMI (``srun --mpi=none``, or a site whose MpiDefault is none):
    their MPI libraries cannot join them into one job (Open MPI fails in MPI_Init, others run singletons)."""
    e = os.environ
    if "SLURM_STEP_ID" not in e or "SLURM_PROCID" not in e:
        return False
    n = e.get("SLURM_STEP_NUM_TASKS") or e.get("SLURM_NTASKS") or "1"
    return n.isdigit() and int(n) > 1 and not any(v in e for v in _PMI_VARS)


def comm() -> Any:
    """COMM_WORLD, initialising MPI on first use (a plain ``SerialComm`` if mpi4py is unusable)."""
    global _COMM
    if _COMM is None:
        if srun_without_pmi():
            if os.environ.get("SLURM_PROCID") == "0":
                print(f"tvbinv-hpc: error: srun started {os.environ.get('SLURM_STEP_NUM_TASKS', 'several')} "
                      "tasks without PMI (srun --mpi=none, or the site's MpiDefault is none), so MPI cannot "
                      "join them into one job: launch with `srun --mpi=pmix`, or another plugin of "
                      "`srun --mpi=list` that your MPI library supports (jobscripts/slurm.sbatch picks one, "
                      "see TVBINV_SRUN_MPI)", file=sys.stderr, flush=True)
            raise SystemExit(2)
        try:
            import mpi4py

            # worker threads simulate (numba, no MPI); only the main thread calls MPI: FUNNELED
            mpi4py.rc.threads = True
            mpi4py.rc.thread_level = "funneled"
            from mpi4py import MPI

            _COMM = MPI.COMM_WORLD
        except (ImportError, RuntimeError) as exc:
            if under_launcher():
                raise
            print(f"tvbinv-hpc: MPI unavailable ({exc}); running serially", file=sys.stderr)
            _COMM = SerialComm()
        install_abort_hook()
    return _COMM


def rank() -> int:
    return comm().Get_rank()


def size() -> int:
    return comm().Get_size()


def hostname() -> str:
    return socket.gethostname()


def abort_on_exception(exc_type: type, exc: BaseException, tb: Any) -> None:
    """Print this rank's traceback, then bring the whole job down (a lone failing rank would hang)."""
    c = _COMM
    r, n = (c.Get_rank(), c.Get_size()) if c is not None else (0, 1)
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    prefix = f"[rank {r}/{n} on {hostname()}] "
    sys.stderr.write("".join(prefix + line + "\n" for line in text.rstrip().splitlines()))
    sys.stderr.flush()
    sys.stdout.flush()
    if n > 1:
        c.Abort(1)
    os._exit(1)


def install_abort_hook() -> None:
    """Route uncaught exceptions through ``abort_on_exception`` (PyFR's mpiutil pattern)."""
    global _HOOKED
    if not _HOOKED:
        sys.excepthook = abort_on_exception
        _HOOKED = True


def decide(fn: Callable[[], T], root: int = 0) -> T:
    """Run ``fn`` on ``root`` only and broadcast its result, or its ``TvbinvError``, to every rank.

    All ranks then return the same value or raise the same error, so no rank reaches a collective alone.
    Unexpected exceptions on root are broadcast too (as a flag) so that every rank aborts together.
    """
    c = comm()
    outcome: tuple[str, Any] = ("ok", None)
    if c.Get_rank() == root:
        try:
            outcome = ("ok", fn())
        except TvbinvError as exc:
            outcome = ("error", exc)
        except BaseException:
            outcome = ("crash", traceback.format_exc())
    outcome = quiet_bcast(outcome, root=root)  # root may take a while (connectome, JIT): others sleep
    kind, payload = outcome
    if kind == "error":
        raise payload
    if kind == "crash":
        if c.Get_rank() == root:
            sys.stderr.write(f"[rank {root}] {payload}")
        raise SystemExit(1)
    return payload


def agree(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (logical OR reduction)."""
    c = comm()
    return bool(c.allreduce(bool(flag), op=_op("LOR")))


def _op(name: str) -> Any:
    c = comm()
    if isinstance(c, SerialComm):
        return None
    from mpi4py import MPI

    return getattr(MPI, name)


class StopRequest:
    """Records SIGTERM / SIGUSR1 (scheduler's warning before the time limit); ranks agree at batch ends."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1)):
        self.received: int | None = None
        for sig in signals:
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = signum


_STOP: StopRequest | None = None


def stop_request() -> StopRequest:
    """The process-wide stop flag, installed on first use (the CLI installs it before any heavy import,
    so that a scheduler's warning during start-up, training or diagnostics is kept, not fatal)."""
    global _STOP
    if _STOP is None:
        _STOP = StopRequest()
    return _STOP


def library_versions() -> dict[str, str]:
    """MPI library version, read without initialising MPI when possible."""
    out: dict[str, str] = {}
    try:
        import mpi4py

        out["mpi4py"] = mpi4py.__version__
        from mpi4py import MPI

        out["mpi"] = MPI.Get_library_version().strip().splitlines()[0]
        out["mpi_standard"] = "{}.{}".format(*MPI.Get_version())
    except Exception as exc:  # noqa: BLE001 - report, never fail, in a version listing
        out.setdefault("mpi4py", "missing")
        out["mpi"] = f"unavailable ({exc.__class__.__name__})"
    return out


def quiet_bcast(obj: T, root: int = 0, poll: float = 0.05) -> T:
    """A broadcast whose waiting ranks sleep instead of busy-polling (they idle while root trains)."""
    c = comm()
    if isinstance(c, SerialComm) or c.Get_size() == 1:
        return obj
    req = c.Ibarrier()
    while not req.Test():
        import time

        time.sleep(poll)
    return c.bcast(obj, root=root)


def lead(task: Callable[[], T], services: dict[str, Callable[..., Any]]) -> T:
    """Rank 0 runs ``task`` while the other ranks sleep; when ``task`` calls ``call_all(name, *args)``
    every rank runs ``services[name](*args)`` together (e.g. posterior predictive simulations).
    Returns root's result, or raises its ``TvbinvError``, on every rank."""
    c = comm()
    if c.Get_rank() == 0:
        try:
            msg: tuple = ("done", task())
        except TvbinvError as exc:
            msg = ("error", exc)
        quiet_bcast(msg)
    else:
        while True:
            msg = quiet_bcast(None)
            if msg[0] == "call":
                services[msg[1]](*msg[2])
                continue
            break
    if msg[0] == "error":
        raise msg[1]
    return msg[1]


def call_all(services: dict[str, Callable[..., Any]], name: str, *args: Any) -> Any:
    """From rank 0 inside ``lead``: make every rank run ``services[name](*args)``; returns root's result."""
    quiet_bcast(("call", name, args))
    return services[name](*args)
