"""jobscripts/slurm.sbatch on a real single-node SLURM (tests/slurm_local.py sets it up: Debian's slurm-wlm +
munge, installed with apt-get as root when missing, daemons started by hand under a temp folder).

On one small config (66 rows of an 8-region model, 2 ranks):
  (a) a complete `run` (simulate -> train -> diagnose) in one job: its store is the uninterrupted reference;
  (b) the time-limit warning (`--time=2 --signal=B:USR1@60`) arriving mid-simulate -> exit 75 ->
      `scontrol requeue` -> the requeued job completes; the store is bit-identical to (a)'s;
  (c) `scancel --signal=USR1 --batch` mid-simulate -> the same;
  (d) a bad config -> exit 2, not requeued;
  (e) `tvbinv-hpc info` under a bare `srun -n 2 --mpi=pmix` reports 1 thread per rank, and under
      `srun --mpi=none` says how to launch instead of failing inside MPI_Init.
A requeued job is held ~2 min (its BeginTime) before it may start again; the test skips that hold with
`scontrol update JobId=... StartTime=now` (tests/slurm_local.Cluster.wait_done).

Skipped, with the reason, only where SLURM cannot be installed or started (not root, no apt-get, no network,
daemons that do not come up); TVBINV_TEST_SLURM=require turns that skip into a failure, =skip skips.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from slurm_local import Unavailable, start_cluster
from tvbinv_support import SMALL_TOML, assert_same_store, store_rows, write_small_connectome

pytestmark = [pytest.mark.mpi, pytest.mark.slurm]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "jobscripts" / "slurm.sbatch"
VENV = Path(sys.prefix) if (Path(sys.prefix) / "bin" / "activate").exists() else ROOT / ".venv"
N_SIMS, BATCH = 66, 3  # 22 batches: 11 per rank
RUN_EXTRA = """
[observation]
theta = { "coupling.a" = 0.25, "model.eta" = -4.6 }

[train]
max_epochs = 20
hidden_features = 16
num_transforms = 2

[diagnose]
num_samples = 200
sbc_rows = 4
sbc_samples = 50
ppc_draws = 2
"""


@pytest.fixture(scope="module")
def cluster():
    mode = os.environ.get("TVBINV_TEST_SLURM", "")
    if mode == "skip":
        pytest.skip("TVBINV_TEST_SLURM=skip")
    try:
        c = start_cluster()
    except Unavailable as exc:
        if mode == "require":
            pytest.fail(f"TVBINV_TEST_SLURM=require but: {exc}")
        pytest.skip(f"no real SLURM here: {exc}")
    yield c
    c.cancel_all()
    if os.environ.get("TVBINV_TEST_SLURM_KEEP") != "1":
        c.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("slurm")
    write_small_connectome(d / "conn8.npz")
    return d


def make_run(workdir: Path, name: str, *, bad: bool = False) -> Path:
    """A folder with the shared config (same text in every folder: same rows)."""
    d = workdir / name
    d.mkdir()
    text = SMALL_TOML.format(out="out", npz=workdir / "conn8.npz", n_sims=N_SIMS, batch=BATCH, a_high=0.4,
                             extra=RUN_EXTRA)
    if bad:
        text = text.replace("dt = 0.02", "dt = -0.02")
    (d / "cfg.toml").write_text(text)
    return d


def submit(cluster, d: Path, *sbatch_args: str, **env: str) -> str:
    job_env = cluster.env(TVBINV_VENV=str(VENV), PYTHONUNBUFFERED="1", **env)
    for k in [k for k in job_env if k.startswith("TVBINV_") and k not in env and k != "TVBINV_VENV"]:
        del job_env[k]
    return cluster.sbatch("--ntasks=2", f"--output={d}/job-%j.out", f"--chdir={d}", *sbatch_args,
                          str(SCRIPT), "cfg.toml", env=job_env, cwd=d)


def job_log(d: Path, jobid: str) -> str:
    p = d / f"job-{jobid}.out"
    return p.read_text(errors="replace") if p.exists() else ""


def rows_done(store: Path) -> int:
    import h5py

    try:
        with h5py.File(store, "r") as f:
            return int((f["status"][...] != 0).sum())
    except (OSError, KeyError):
        return 0


def wait_rows(cluster, jobid: str, store: Path, n: int, timeout: float = 120) -> int:
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = rows_done(store)
        if got >= n:
            return got
        state = cluster.job(jobid).get("JobState", "")
        if state not in ("PENDING", "RUNNING", "CONFIGURING"):
            break
        time.sleep(0.2)
    raise AssertionError(f"job {jobid}: {rows_done(store)} rows after {time.monotonic() - t0:.0f} s, "
                         f"wanted {n}:\n{job_log(store.parent.parent, jobid)}")


def sessions(store: Path) -> list[dict]:
    from tvbinv_hpc.parallel.store import sessions as read_sessions

    return read_sessions(store)


def check_requeued_and_identical(cluster, d: Path, jobid: str, info: dict, reference: Path) -> str:
    log = job_log(d, jobid)
    # A plain-string message: pytest prints it whole (a tuple's repr is cut in the middle).
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (
        f"job record: {info}\n--- job log ---\n{log}\n--- slurmctld ---\n{cluster.ctld_log(jobid)}")
    restarts = int(info["Restarts"])
    assert restarts >= 1, log
    assert log.count("exit 75: checkpointed with work left; requeueing job") == restarts, log
    assert log.count("requeue requested") == restarts, log
    assert f"restart {restarts}/20" in log and "finished: exit 0, simulate complete" in log, log
    assert "exited on signal" not in log.lower() and "exit 143" not in log, log
    store = d / "out" / "store.h5"
    runs = sessions(store)
    assert len(runs) == restarts + 1, runs
    first = runs[0]
    assert first["stopped_by_signal"] and 0 < first["rows_done"] < N_SIMS, (first, log)  # mid-simulate
    assert sum(r["rows_done"] for r in runs) == N_SIMS
    assert_same_store(store, reference)
    return log


@pytest.fixture(scope="module")
def reference(cluster, workdir):
    """(a) A complete `run` in one job, no stop: the uninterrupted reference store."""
    d = make_run(workdir, "complete")
    jobid = submit(cluster, d)  # TVBINV_VERB unset: the script's default, run
    info, skipped = cluster.wait_done(jobid, timeout=400)
    return d, jobid, info, skipped


def test_a_complete_run_in_one_job(reference):
    d, jobid, info, skipped = reference
    log = job_log(d, jobid)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, log)
    assert info["Restarts"] == "0" and skipped == 0, log
    assert "2 tasks on 1 node(s)" in log and "verb 'run'" in log, log
    assert "srun --mpi=pmix (MpiDefault is 'none'; pmix is available)" in log, log
    assert "finished: exit 0, run complete" in log and "run complete: outputs in" in log, log
    out = d / "out"
    assert (out / "posterior.pt").is_file() and (out / "diagnostics" / "summary.json").is_file()
    assert (out / "diagnostics" / "report.md").is_file() and (out / "ppc.h5").is_file()
    rows = store_rows(out / "store.h5")
    assert (rows["status"] != 0).all()
    (run,) = sessions(out / "store.h5")
    assert run["ranks"] == 2 and not run["stopped_by_signal"] and run["rows_done"] == N_SIMS


@pytest.mark.timeout(600)
def test_b_time_limit_warning_mid_simulate_requeues_and_completes(cluster, workdir, reference):
    # --time=2 with the warning @60: slurmctld sends USR1 to the batch shell ~60 s after the start (up to
    # ~10 s earlier, its timer's resolution). Each batch sleeps 6 s extra (TVBINV_TEST_BATCH_DELAY): 11
    # batches per rank take >= 66 s after a start-up of ~5-15 s, so the warning lands in mid-simulate.
    # The requeued job gets the same limit and warning; it has fewer rows left and finishes before them
    # (if not, it is requeued again, which the checks allow).
    d = make_run(workdir, "timelimit")
    jobid = submit(cluster, d, "--time=2", "--signal=B:USR1@60", TVBINV_VERB="simulate",
                   TVBINV_TEST_BATCH_DELAY="6")
    info, skipped = cluster.wait_done(jobid, timeout=480)
    log = check_requeued_and_identical(cluster, d, jobid, info, reference[0] / "out" / "store.h5")
    assert skipped == int(info["Restarts"])
    assert "received SIGUSR1: forwarding SIGUSR1 to srun" in log, log
    assert "signal 10 received: finishing the batch in flight" in log, log


@pytest.mark.timeout(400)
def test_c_scancel_usr1_to_the_batch_shell_requeues_and_completes(cluster, workdir, reference):
    d = make_run(workdir, "scancel")
    jobid = submit(cluster, d, TVBINV_VERB="simulate", TVBINV_TEST_BATCH_DELAY="1")
    wait_rows(cluster, jobid, d / "out" / "store.h5", 2 * 2 * BATCH)  # two rounds of batches done
    res = cluster.run("scancel", "--signal=USR1", "--batch", jobid)
    assert res.returncode == 0, res.stderr
    info, skipped = cluster.wait_done(jobid, timeout=300)
    log = check_requeued_and_identical(cluster, d, jobid, info, reference[0] / "out" / "store.h5")
    assert info["Restarts"] == "1" and skipped == 1, log
    assert log.count("received SIGUSR1: forwarding SIGUSR1 to srun") == 1, log


@pytest.mark.timeout(300)
def test_d_bad_config_exits_2_and_is_not_requeued(cluster, workdir):
    import time

    d = make_run(workdir, "bad", bad=True)
    jobid = submit(cluster, d, TVBINV_VERB="simulate")
    info, _ = cluster.wait_done(jobid, timeout=240)
    log = job_log(d, jobid)
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "2:0", (info, log)
    assert "integrator.dt" in log and "must be > 0" in log, log
    assert "exit 2: configuration or usage error (see above): NOT requeueing" in log, log
    assert "requeue" not in log.replace("NOT requeueing", ""), log
    time.sleep(3)
    again = cluster.job(jobid)
    assert again["JobState"] == "FAILED" and again["Restarts"] == "0", again
    assert not (d / "out" / "store.h5").exists()


@pytest.mark.timeout(300)
def test_e_info_under_a_bare_srun(cluster, workdir):
    tvbinv = shutil.which("tvbinv-hpc", path=str(VENV / "bin")) or str(VENV / "bin" / "tvbinv-hpc")
    env = cluster.env(OMP_NUM_THREADS="", NUMBA_NUM_THREADS="")
    for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(k, None)  # as from a login shell: tvbinv-hpc sets the thread counts itself
    res = cluster.run("srun", "-n", "2", "--mpi=pmix", tvbinv, "info", timeout=240, env=env, cwd=workdir)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"ranks +2 on 1 host\(s\): .*; threads per rank 1$", res.stdout, re.M), res.stdout
    res = cluster.run("srun", "-n", "2", "--mpi=none", tvbinv, "info", timeout=240, env=env, cwd=workdir)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("srun started 2 tasks without PMI") == 1, res.stderr
    assert "srun --mpi=pmix" in res.stderr
