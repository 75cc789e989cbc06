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
