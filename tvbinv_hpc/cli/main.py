"""Command-line verbs: ``tvbinv-hpc VERB`` (also ``python -m tvbinv_hpc``).

Imports are lazy so that ``--help``, ``status`` and ``inspect`` start fast and need no MPI launcher.
Expected failures (``TvbinvError``) print one line and exit 2 on every rank; anything else goes
through the MPI abort hook (traceback of the failing rank, whole job aborted).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from tvbinv_hpc._version import __version__

EXIT_ERROR = 2


def _setup_logging(rank: int, size: int, verbose: bool = False) -> None:
    """Our own handler on the 'tvbinv_hpc' logger: tvb-library reconfigures the root logger on import."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s [rank {rank}/{size}] %(levelname)s %(message)s",
                                           datefmt="%H:%M:%S"))
    log = logging.getLogger("tvbinv_hpc")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else (logging.INFO if rank == 0 else logging.WARNING))
    log.propagate = False


def _mpi_start(args: argparse.Namespace) -> Any:
    from tvbinv_hpc.parallel import mpi

    mpi.stop_request()  # from the first moment: a scheduler's USR1 during start-up must not kill a rank
    mpi.pin_threads()
    c = mpi.comm()
    _setup_logging(c.Get_rank(), c.Get_size(), getattr(args, "verbose", False))
    return c


def cmd_info(args: argparse.Namespace) -> int:
    c = _mpi_start(args)
    from tvbinv_hpc.cli.info import report

    text = report(c)
    if c.Get_rank() == 0:
        print(text)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from tvbinv_hpc.pipeline import write_example

    path = write_example(args.path, force=args.force)
    print(f"wrote {path}; edit it, then: tvbinv-hpc launch -n 2 -- run {path}")
    return 0


def _phase(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        # Threads first: numba reads NUMBA_NUM_THREADS when it is imported (pipeline imports it), and a later
        # compile that finds another value in the environment fails once its thread pool runs (a cold
        # cache made the first FCD compile of a cohort's diagnose abort the job after every simulation).
        _mpi_start(args)
        from tvbinv_hpc import pipeline

        return getattr(pipeline, name)(args)

    return run


def cmd_status(args: argparse.Namespace) -> int:
    from tvbinv_hpc.cli.inspect import status_text

    print(status_text(args.file))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from tvbinv_hpc.cli.inspect import inspect_text

    print(inspect_text(args.file, show_config=not args.no_config))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    rest = [a for a in args.bench_args if a != "--"]
    if "--train" in rest:
        from tvbinv_hpc.bench import train

        return train.main([a for a in rest if a != "--train"]) or 0
    if "--store" in rest:
        from tvbinv_hpc.bench import store

        return store.main([a for a in rest if a != "--store"]) or 0
    if "--scaling" in rest:
        from tvbinv_hpc.bench import scaling

        return scaling.main([a for a in rest if a != "--scaling"]) or 0
    if "--parts" in rest:
        from tvbinv_hpc.bench import parts

        return parts.main([a for a in rest if a != "--parts"]) or 0
    if "--stability" in rest:
        from tvbinv_hpc.bench import stability

        return stability.main([a for a in rest if a != "--stability"]) or 0
    from tvbinv_hpc.bench import engine

    return engine.main(rest) or 0


def cmd_launch(args: argparse.Namespace) -> int:
    from tvbinv_hpc.cli.launch import launch

    return launch(args.n, args.command, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tvbinv-hpc", description="MPI-parallel simulation-based inference over "
                                "TVB's Montbrio-Pazo-Roxin + BOLD models.")
    p.add_argument("--version", action="version", version=f"tvbinv-hpc {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB")

    def verb(name: str, fn: Any, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(process=fn)
        sp.add_argument("-v", "--verbose", action="store_true", help="debug logging on every rank")
        return sp

    verb("info", cmd_info, "versions of every library, MPI and HDF5 support, rank count")
    sp = verb("init", cmd_init, "write the quickstart config for editing")
    sp.add_argument("path", nargs="?", default="tvbinv.toml")
    sp.add_argument("--force", action="store_true", help="overwrite an existing file")
    phases = {
        "simulate": "draw theta from the prior, simulate all rows on all ranks into the HDF5 store (resumable)",
        "train": "rank 0 trains the NPE posterior on the train rows of the store",
        "diagnose": "posterior for the observation, test-set diagnostics, PPC on all ranks, netCDF + plots",
        "run": "simulate -> train -> diagnose in one job; finished phases are skipped",
    }
    for name, help in phases.items():
        sp = verb(name, _phase(name), help)
        sp.add_argument("config", nargs="?" if name == "run" else None, default="quickstart",
                        help="TOML config file, or 'quickstart' for the built-in example")
        if name in ("train", "run", "diagnose"):
            sp.add_argument("--force", action="store_true", help="redo this phase even if its output exists")
    sp = verb("status", cmd_status, "progress of a store: rows done / diverged / pending, sessions (read-only)")
    sp.add_argument("file")
    sp = verb("inspect", cmd_inspect, "layout, names and config of a store (read-only)")
    sp.add_argument("file")
    sp.add_argument("--no-config", action="store_true", help="omit the stored config text")
    sp = verb("bench", cmd_bench, "time our engine against TVB's NbMPRBackend (same process, one core); "
              "with --scaling: parallel efficiency of simulate from 1 to P ranks and the HDF5 write share; "
              "with --train: NPE training time on 10^4 simulations; with --stability: diverged fraction "
              "of the fixed and adaptive schemes at the seed's settings; with --store: store operations and "
              "per-rank memory at 10^4 and 10^6 rows; with --parts: the kernel's time by part of a step")
    sp.add_argument("bench_args", nargs=argparse.REMAINDER,
                    help="options passed to the benchmark (`bench -- --help`, `bench --scaling --help`)")
    sp = verb("launch", cmd_launch, "run a verb under mpiexec with the flags this machine needs "
              "(--allow-run-as-root as root, --oversubscribe beyond the core count)")
    sp.add_argument("-n", type=int, default=2, help="number of ranks")
    sp.add_argument("--timeout", type=float, default=None, help="kill the job after this many seconds")
    sp.add_argument("command", nargs=argparse.REMAINDER, help="-- VERB [ARGS]")
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"] and not {"-h", "--help"} & set(argv[1:2]):
        # The benchmarks parse their own options (--scaling, --train, --steps, ...).
        args = argparse.Namespace(process=cmd_bench, bench_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    if not getattr(args, "process", None):
        parser.print_help()
        return EXIT_ERROR
    from tvbinv_hpc.errors import TvbinvError

    try:
        return int(args.process(args) or 0)
    except TvbinvError as exc:
        # Raised identically on every rank (errors are decided on rank 0 and broadcast): say it once.
        from tvbinv_hpc.parallel import mpi

        if mpi._COMM is None or mpi._COMM.Get_rank() == 0:
            print(f"tvbinv-hpc: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `tvbinv-hpc inspect FILE | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        from tvbinv_hpc.parallel import mpi

        mpi.abort_on_exception(*sys.exc_info())
        return 130
    except Exception:
        from tvbinv_hpc.parallel import mpi

        mpi.abort_on_exception(*sys.exc_info())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
