from tvbinv_hpc import __version__


def test_version(run_cli):
    res = run_cli(["--version"])
    assert res.returncode == 0 and __version__ in res.stdout


def test_help_lists_verbs(run_cli):
    res = run_cli(["--help"])
    for verb in ("info", "init", "simulate", "train", "diagnose", "run", "status", "inspect", "bench", "launch"):
        assert verb in res.stdout


def test_info_without_launcher(run_cli):
    res = run_cli(["info"], timeout=120)
    assert res.returncode == 0, res.stderr
    for name in ("numpy", "numba", "torch", "sbi", "tvb-library", "h5py", "HDF5", "mpi4py", "MPI", "netCDF4"):
        assert name in res.stdout
    assert "ranks        1 on" in res.stdout
    assert "simulation   1 rank(s) x 1 thread(s) = 1 threads" in res.stdout   # NUMBA_NUM_THREADS=1 here


def test_phases_pin_threads_before_numba_loads(tmp_path):
    """numba reads NUMBA_NUM_THREADS once, on import; a later compile that finds another value in the
    environment raises once its thread pool runs. A phase must therefore pin the threads before anything
    imports numba (with a cold cache the first FCD compile of a cohort's diagnose aborted the job)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tvbinv_hpc.parallel import mpi\n"
        "mpi.cores_per_rank = lambda: 1\n"          # as under a launcher with two ranks on two cores
        "from tvbinv_hpc.cli.main import main\n"
        f"rc = main(['simulate', {str(tmp_path / 'missing.toml')!r}])\n"
        "import numba.core.config as c, os\n"
        "print(rc, c.NUMBA_NUM_THREADS, os.environ['NUMBA_NUM_THREADS'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    rc, numba_threads, env_threads = res.stdout.split()
    assert rc != "0" and "missing.toml" in res.stderr          # the config error, after the threads were set
    assert numba_threads == env_threads == "1"
