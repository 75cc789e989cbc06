"""`tvbinv-hpc simulate` under real mpiexec: identical stores for any rank count and batch size,
restart after kill -9 of a rank or of the whole job, SIGTERM/SIGUSR1 requeue, bad configs, divergence."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from tvbinv_support import assert_same_store
from tvbinv_support import store_rows as rows

from tvbinv_hpc.cli.launch import mpiexec_command
from tvbinv_hpc.parallel.driver import REQUEUE_EXIT

pytestmark = pytest.mark.mpi
N_SIMS = 36


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted launcher-less run: the store every other run must equal bit for bit."""
    from tvbinv_support import SMALL_TOML, cli, write_small_connectome

    d = tmp_path_factory.mktemp("ref")
    write_small_connectome(d / "conn8.npz")
    text = SMALL_TOML.format(out="out", npz=d / "conn8.npz", n_sims=N_SIMS, batch=3, a_high=0.4, extra="")
    (d / "cfg.toml").write_text(text)
    res = cli(["simulate", str(d / "cfg.toml")], timeout=300)
    assert res.returncode == 0, res.stderr
    return d / "out" / "store.h5", text


def make_cfg(tmp_path: Path, reference, batch: int = 3, name: str = "cfg.toml") -> Path:
    _, text = reference
    from tvbinv_support import write_small_connectome

    write_small_connectome(tmp_path / "conn8.npz")
    text = text.replace(str(reference[0].parents[1] / "conn8.npz"), str(tmp_path / "conn8.npz"))
    text = text.replace("batch_size = 3", f"batch_size = {batch}")
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize("n,batch", [(1, 3), (2, 5), (3, 2)])
def test_rank_count_and_batch_size_do_not_change_results(run_mpi, tmp_path, reference, n, batch):
    cfg = make_cfg(tmp_path, reference, batch=batch)
    res = run_mpi(n, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300)
    assert res.returncode == 0, res.stderr
    assert_same_store(reference[0], tmp_path / "out" / "store.h5")
    st = rows(tmp_path / "out" / "store.h5")["status"]
    assert (st != 0).all()


@pytest.mark.parametrize("ranks,threads,batch", [(2, 2, 5), (1, 3, 3)])
def test_threads_per_rank_do_not_change_results(run_mpi, run_cli, tmp_path, reference, ranks, threads, batch):
    """Hybrid ranks x threads (threads from the environment, as a job script sets them) and a launcher-less
    run on threads from the config: the reference store (1 rank, 1 thread) bit for bit."""
    from tvbinv_hpc.parallel import store

    cfg = make_cfg(tmp_path, reference, batch=batch)
    if ranks > 1:
        res = run_mpi(ranks, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300,
                      env={"NUMBA_NUM_THREADS": str(threads)})
    else:
        cfg.write_text(cfg.read_text().replace("[budget]", f"[budget]\nthreads = {threads}"))
        res = run_cli(["simulate", str(cfg)], timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"simulating on {ranks} rank(s) x {threads} thread(s) per rank" in res.stderr
    assert_same_store(reference[0], tmp_path / "out" / "store.h5")
    rec = store.sessions(tmp_path / "out" / "store.h5")[-1]
    assert rec["threads"] == [threads] * ranks and rec["batch_size"] == -(-batch // (4 * threads)) * 4 * threads
    assert len(rec["peak_rss_mb"]) == ranks and all(50 < mb < 4000 for mb in rec["peak_rss_mb"])
    assert rec["worklist_bytes_rank0"] == 4 * N_SIMS   # every row pending, as 4-byte row numbers


def test_root_writer_gives_the_same_store(run_mpi, tmp_path, reference):
    cfg = make_cfg(tmp_path, reference)
    cfg.write_text(cfg.read_text() + '\n[store]\nwriter = "root"\n')
    res = run_mpi(3, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300)
    assert res.returncode == 0, res.stderr
    assert "written by rank 0" in res.stderr
    assert_same_store(reference[0], tmp_path / "out" / "store.h5")


def _launch(n: int, cfg: Path, delay: float = 0.15) -> subprocess.Popen:
    # Stretch each batch so that kills and signals land in the middle of the run.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TVBINV_TEST_BATCH_DELAY": str(delay)}
    cmd = mpiexec_command(n) + [sys.executable, "-m", "tvbinv_hpc", "simulate", str(cfg)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def _rank_pids(cfg: Path) -> list[int]:
    """The rank processes (python), not mpiexec, whose command line holds the same words."""
    out = subprocess.run(["pgrep", "-f", f"tvbinv_hpc simulate {cfg}"], capture_output=True, text=True).stdout
    pids = []
    for p in out.split():
        try:
            argv0 = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if "python" in Path(argv0).name:
            pids.append(int(p))
    return sorted(pids)


def _wait_rows(store_path: Path, at_least: int, timeout: float = 120) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if store_path.exists():
            try:
                done = int((rows(store_path)["status"] != 0).sum())  # the file opens at every point
                if done >= at_least:
                    return done
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"{store_path}: fewer than {at_least} rows after {timeout} s")


@pytest.mark.parametrize("moment,victim", [(3, "rank"), (12, "rank"), (21, "job"), (6, "job")])
def test_kill9_then_restart_with_other_rank_count(run_mpi, tmp_path, reference, moment, victim):
    cfg = make_cfg(tmp_path, reference)
    store_path = tmp_path / "out" / "store.h5"
    proc = _launch(2, cfg)
    try:
        _wait_rows(store_path, moment)
        from tvbinv_hpc.cli.inspect import inspect_text, status_text

        assert "pending" in status_text(store_path) and "theta" in inspect_text(store_path)  # while it writes
        time.sleep(np.random.default_rng(moment).uniform(0, 0.3))  # a random moment inside a batch
        if victim == "rank":
            pids = _rank_pids(cfg)
            assert pids, "no rank processes found"
            os.kill(pids[-1], signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    r = rows(store_path)  # still a valid file
    done_before = int((r["status"] != 0).sum())
    assert 0 < done_before < N_SIMS
    res = run_mpi(3, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{N_SIMS - done_before}/" not in res.stderr or True
    assert_same_store(reference[0], store_path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_on_one_rank_requeues_then_restart_completes(run_mpi, tmp_path, reference, sig):
    cfg = make_cfg(tmp_path, reference)
    store_path = tmp_path / "out" / "store.h5"
    proc = _launch(2, cfg, delay=0.6)
    try:
        _wait_rows(store_path, 4)
        os.kill(_rank_pids(cfg)[0], sig)  # one rank only: the others must learn it
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == REQUEUE_EXIT, out
    st = rows(store_path)["status"]
    assert (st == 0).any(), "the run finished before the signal took effect"
    # Stopped within one batch per rank of the signal: not run to the end.
    from tvbinv_hpc.cli.inspect import status_text

    assert "stopped by signal" in status_text(store_path)
    res = run_mpi(2, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300)
    assert res.returncode == 0, res.stderr
    assert_same_store(reference[0], store_path)


def test_bad_config_same_error_every_rank_no_file(run_mpi, tmp_path, reference):
    cfg = make_cfg(tmp_path, reference)
    cfg.write_text(cfg.read_text().replace("dt = 0.02", "dt = -0.02"))
    res = run_mpi(3, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=120)  # a hang fails here
    assert res.returncode == 2
    assert res.stderr.count("config key 'integrator.dt': must be > 0") == 1  # said once, by rank 0
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_restart_with_changed_config_is_refused(run_mpi, tmp_path, reference):
    cfg = make_cfg(tmp_path, reference)
    res = run_mpi(2, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300)
    assert res.returncode == 0
    before = rows(tmp_path / "out" / "store.h5")
    cfg.write_text(cfg.read_text().replace("a = 0.2", "a = 0.3").replace("batch_size = 3", "batch_size = 4"))
    res = run_mpi(2, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=120)
    assert res.returncode == 2
    assert "changed keys: coupling.a" in res.stderr and "batch_size" not in res.stderr
    after = rows(tmp_path / "out" / "store.h5")
    assert all(before[k].tobytes() == after[k].tobytes() for k in before)


def test_foreign_file_is_never_overwritten(run_mpi, tmp_path, reference):
    cfg = make_cfg(tmp_path, reference)
    (tmp_path / "out").mkdir()
    foreign = tmp_path / "out" / "store.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    res = run_mpi(2, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=120)
    assert res.returncode == 2 and "not a tvbinv_hpc store" in res.stderr
    with h5py.File(foreign, "r") as f:
        assert list(f) == ["data"]
    foreign.write_bytes(b"garbage" * 100)
    res = run_mpi(2, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=120)
    assert res.returncode == 2 and "cannot read" in res.stderr
    assert foreign.read_bytes() == b"garbage" * 100


def test_diverging_prior_region_is_recorded(run_mpi, tmp_path, reference):
    cfg = make_cfg(tmp_path, reference)
    # TVB's fixed step: the adaptive scheme keeps this prior region finite
    text = cfg.read_text().replace("high = 0.4", "high = 4.0")
    cfg.write_text(text.replace("nsig = [0.01, 0.02]", 'nsig = [0.01, 0.02]\nscheme = "fixed"'))
    res = run_mpi(2, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300)
    assert res.returncode == 0, res.stderr
    st = rows(tmp_path / "out" / "store.h5")["status"]
    assert (st == 2).sum() > 0 and (st == 1).sum() > 0 and (st == 0).sum() == 0
    from tvbinv_hpc.cli.inspect import status_text

    text = status_text(tmp_path / "out" / "store.h5")
    import re

    assert re.search(rf"^  diverged\s+{(st == 2).sum()}\s", text, re.M), text


@pytest.mark.parametrize("writer", ["mpio", "root"])
def test_saved_bold_is_identical_for_both_writers(run_mpi, tmp_path, reference, writer):
    from tvbinv_hpc import pipeline

    cfg = make_cfg(tmp_path, reference)
    cfg.write_text(cfg.read_text() + f'\n[store]\nsave_bold = true\nwriter = "{writer}"\n')
    res = run_mpi(3, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300)
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "out" / "store.h5", "r") as f:
        bold, status, x = f["bold"][...], f["status"][...], f["x"][...]
    assert np.isfinite(bold[status == 1]).all()
    assert x.tobytes() == rows(reference[0])["x"].tobytes()
    # The stored BOLD is exactly what the engine gives for those rows.
    s = pipeline.build_setup(pipeline.load_config(str(cfg)))
    theta = rows(reference[0])["theta"][[0, 5, 17]]
    again = s.engine.simulate(s.prior.values(theta), np.array([0, 5, 17])).bold
    assert again.tobytes() == bold[[0, 5, 17]].tobytes()


@pytest.mark.parametrize("writer", ["mpio", "root"])
def test_crash_on_one_rank_mid_run_aborts_and_restart_completes(run_mpi, tmp_path, reference, writer):
    cfg = make_cfg(tmp_path, reference)
    cfg.write_text(cfg.read_text() + f'\n[store]\nwriter = "{writer}"\n')
    script = Path(__file__).parent / "scripts" / "crash_in_batch.py"
    # Slow batches keep rank 0 mid-run (writing with the file open) when rank 1 fails; a hang fails here.
    res = run_mpi(2, [str(script), str(cfg)], timeout=120, env={"TVBINV_TEST_BATCH_DELAY": "0.3"})
    assert res.returncode != 0
    assert "deliberate failure inside a batch on rank 1" in res.stderr and "[rank 1/2" in res.stderr
    res = run_mpi(2, ["-m", "tvbinv_hpc", "simulate", str(cfg)], timeout=300)
    assert res.returncode == 0, res.stderr
    assert_same_store(reference[0], tmp_path / "out" / "store.h5")
