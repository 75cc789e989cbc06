"""The cluster job scripts in jobscripts/ run here with stand-ins for the scheduler (tests/jobscripts_fake/):

* logic tests: a stub launcher (``srun``/``mpiexec`` that waits for a signal or exits with a chosen code)
  checks signal forwarding, requeue/resubmission, the restart guard and that crashes / exit 2 never requeue;
* real cycles: the real tvbinv-hpc under Open MPI (fake ``srun`` -> ``mpiexec``), interrupted mid-run
  (SIGUSR1 to the batch shell, PBS internal time budget, SIGUSR1 to local.sh), then requeued as the
  scheduler would and run to completion; and a bad config -> exit 2, no requeue.

Every subprocess has a timeout and its own session, killed as a whole when a test fails.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOBSCRIPTS = ROOT / "jobscripts"
FAKES = Path(__file__).resolve().parent / "jobscripts_fake"
SCRIPTS = {"slurm": JOBSCRIPTS / "slurm.sbatch", "pbs": JOBSCRIPTS / "pbs.sh", "local": JOBSCRIPTS / "local.sh"}
# The venv that runs the tests (ROOT/.venv under `make test`; another checkout's venv in a git worktree).
VENV = Path(sys.prefix) if (Path(sys.prefix) / "bin" / "activate").exists() else ROOT / ".venv"
REQUEUE_EXIT = 75
SLURM_JOB, PBS_JOB = "4242", "77.fake"


# ---------------------------------------------------------------------------------------------- helpers
def fake_bin(tmp_path: Path, stub: bool) -> Path:
    """A folder for the front of PATH: the scheduler commands, and the stub as srun/mpiexec if ``stub``."""
    d = tmp_path / ("stubbin" if stub else "fakebin")
    d.mkdir(exist_ok=True)
    for name in ("srun", "scontrol", "qsub", "qstat"):
        shutil.copy(FAKES / name, d / name)
    if stub:
        for name in ("srun", "mpiexec"):
            shutil.copy(FAKES / "launcher_stub", d / name)
    for f in d.iterdir():
        f.chmod(0o755)
    return d


def script_env(kind: str, tmp_path: Path, *, stub: bool, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PBS_", "TVBINV_"))}
    env.update(PATH=f"{fake_bin(tmp_path, stub)}{os.pathsep}{env.get('PATH', '')}",
               TVBINV_VENV=str(VENV), FAKE_SCHED_LOG=str(tmp_path / "sched.log"),
               STUB_LOG=str(tmp_path / "stub.log"), STUB_READY=str(tmp_path / "stub.ready"))
    if kind == "slurm":
        env.update(SLURM_JOB_ID=SLURM_JOB, SLURM_JOBID=SLURM_JOB, SLURM_NTASKS="2", SLURM_JOB_NUM_NODES="1",
                   SLURM_JOB_NODELIST="localhost", SLURM_SUBMIT_DIR=str(tmp_path))
    elif kind == "pbs":
        nodefile = tmp_path / "nodefile"
        nodefile.write_text("localhost\nlocalhost\n")
        # As if submitted with `qsub -l select=1:ncpus=2:mpiprocs=2` (qstat -f reports it): the script's
        # own 32 cores exceed what the strict stand-in qsub accepts on this machine.
        env.update(PBS_JOBID=PBS_JOB, PBS_O_WORKDIR=str(tmp_path), PBS_NODEFILE=str(nodefile),
                   PBS_ENVIRONMENT="PBS_BATCH", PBS_JOBNAME="tvbinv", FAKE_SELECT="1:ncpus=2:mpiprocs=2",
                   FAKE_PBS_NCPUS="2")
    else:
        env.update(TVBINV_NP="2")
    env.update(extra)
    return env


def start(kind: str, cfg: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start a job script as the scheduler would: bash SCRIPT [CONFIG] (PBS takes the config from the env)."""
    if kind == "pbs":
        env = {**env, "TVBINV_CONFIG": str(cfg)}
        cmd = ["bash", str(SCRIPTS[kind])]
    else:
        cmd = ["bash", str(SCRIPTS[kind]), str(cfg)]
    # SIGINT at its default: a suite started in the background (`make test &`) inherits SIGINT ignored, and a
    # shell cannot trap a signal ignored on entry, so the Ctrl-C test would measure how pytest was started
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"job script hung for {timeout} s:\n{out}")
    return out


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_script(kind: str, cfg: Path, env: dict[str, str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    proc = start(kind, cfg, env, cwd)
    try:
        out = finish(proc, timeout)
    finally:
        kill(proc)
    return proc.returncode, out


def sched_log(tmp_path: Path) -> list[str]:
    p = tmp_path / "sched.log"
    return p.read_text().splitlines() if p.exists() else []


def stub_log(tmp_path: Path) -> list[str]:
    p = tmp_path / "stub.log"
    return p.read_text().splitlines() if p.exists() else []


def requeues(tmp_path: Path) -> list[str]:
    return [line for line in sched_log(tmp_path) if line.startswith(("scontrol", "qsub"))]


def wait_for(cond, what: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return
        if proc.poll() is not None:
            out, _ = proc.communicate()
            pytest.fail(f"job script exited {proc.returncode} before {what}:\n{out}")
        time.sleep(0.05)
    kill(proc)
    out, _ = proc.communicate(timeout=30)
    pytest.fail(f"no {what} after {timeout} s:\n{out}")


def store_status(path: Path):
    import h5py

    with h5py.File(path, "r") as f:  # readable at every point while a job writes
        return f["status"][...]


def rows_done(path: Path) -> int:
    try:
        return int((store_status(path) != 0).sum()) if path.exists() else 0
    except OSError:
        return 0


def status_text(store: Path) -> str:
    res = subprocess.run([sys.executable, "-m", "tvbinv_hpc", "status", str(store)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture
def cfg(small_config):
    return small_config()


# ---------------------------------------------------------------------------------------------- static
@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_script_parses_and_has_the_required_settings(kind):
    path = SCRIPTS[kind]
    res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    text = path.read_text()
    for needle in ('OMP_NUM_THREADS="$THREADS"', 'MKL_NUM_THREADS="$THREADS"', 'OPENBLAS_NUM_THREADS="$THREADS"',
                   'NUMBA_NUM_THREADS="$THREADS"', "TVBINV_THREADS",
                   "HDF5_USE_FILE_LOCKING=FALSE", "REQUEUE_EXIT=75", "trap ", "wait \"$LPID\"", "TVBINV_VERB",
                   "TVBINV_VENV", "TVBINV_MODULES"):
        assert needle in text, f"{path.name} lacks {needle}"
    wanted = {
        "slurm": ['THREADS="${TVBINV_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"', "SRUN_CPUS_PER_TASK",
                  "#SBATCH --cpus-per-task=", "#SBATCH --signal=B:USR1@", "#SBATCH --requeue", "#SBATCH --time=",
                  "#SBATCH --nodes=",
                  "#SBATCH --ntasks=", "--account=", "--partition=", "srun ", "scontrol requeue",
                  "SLURM_RESTART_COUNT", "TVBINV_MAX_RESTARTS", "--kill-on-bad-exit=0", "TVBINV_SRUN_MPI",
                  "--mpi=list"],
        "pbs": ["#PBS -l walltime=", "#PBS -r y", "#PBS -l select=", "#PBS -A", "#PBS -q", "mpiexec",
                "depend=afterany:", "TVBINV_STOP_MARGIN", "PBS_WALLTIME", "TVBINV_MAX_RESUBMITS"],
        "local": ["mpiexec", "TVBINV_MAX_RESTARTS", "TVBINV_NP"],
    }[kind]
    for needle in wanted:
        assert needle in text, f"{path.name} lacks {needle}"
    # Issue 13: ranks per node are not fixed (`sbatch --ntasks=2` must work on a small node); srun must not
    # take the first rank's exit 75 for a crash; the header must not claim that a stop kills the ranks.
    assert "\n#SBATCH --ntasks-per-node" not in text and "kill-on-bad-exit=1" not in text
    assert "kills the ranks" not in text and "cannot checkpoint" not in text


def test_shellcheck_is_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    files = [str(p) for p in SCRIPTS.values()] + [str(p) for p in sorted(FAKES.iterdir())]
    res = subprocess.run(["shellcheck", "--shell=bash", *files], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------------------------------------- logic (stub)
@pytest.mark.parametrize("kind,sig", [("slurm", signal.SIGUSR1), ("slurm", signal.SIGTERM),
                                      ("pbs", signal.SIGUSR1), ("pbs", signal.SIGTERM),
                                      ("local", signal.SIGTERM), ("local", signal.SIGINT)],
                         ids=lambda v: v.name if isinstance(v, signal.Signals) else v)
def test_stop_signal_reaches_the_launcher_as_usr1_then_requeue(kind, sig, tmp_path, cfg):
    env = script_env(kind, tmp_path, stub=True, STUB_WAIT="1")
    proc = start(kind, cfg, env, tmp_path)
    try:
        wait_for(lambda: (tmp_path / "stub.ready").exists(), "launcher start", proc, timeout=60)
        os.kill(proc.pid, sig)
        out = finish(proc, 60)
    finally:
        kill(proc)
    assert proc.returncode == REQUEUE_EXIT, out
    assert "got USR1" in stub_log(tmp_path) and "got TERM" not in stub_log(tmp_path), out
    assert f"received SIG{sig.name[3:]}" in out
    launches = [line for line in stub_log(tmp_path) if line.startswith("launch")]
    assert len(launches) == 1, out  # local.sh stops on TERM/INT instead of looping
    if kind == "slurm":
        assert requeues(tmp_path) == [f"scontrol requeue {SLURM_JOB}"], out
        assert "requeue requested" in out
    elif kind == "pbs":
        (line,) = requeues(tmp_path)
        args = shlex.split(line)
        assert args[args.index("-W") + 1] == f"depend=afterany:{PBS_JOB}"
        assert args[-1] == str(SCRIPTS["pbs"])
        assert "resubmitted as job 78.fake" in out
    else:
        assert requeues(tmp_path) == [] and "Run again to resume" in out


def test_local_usr1_restarts_the_run(tmp_path, cfg):
    env = script_env("local", tmp_path, stub=True, STUB_WAIT="1", TVBINV_MAX_RESTARTS="1")
    proc = start("local", cfg, env, tmp_path)
    try:
        for n in (1, 2):
            ready = tmp_path / "stub.ready"
            wait_for(ready.exists, f"launch {n}", proc, timeout=60)
            ready.unlink()
            os.kill(proc.pid, signal.SIGUSR1)
            wait_for(lambda n=n: stub_log(tmp_path).count("got USR1") == n, f"USR1 {n} forwarded", proc, timeout=60)
        out = finish(proc, 60)
    finally:
        kill(proc)
    assert proc.returncode == REQUEUE_EXIT, out
    assert "restarting (restart 1/1)" in out
    assert "already restarted 1 times" in out  # the guard: no third launch
    assert len([line for line in stub_log(tmp_path) if line.startswith("launch")]) == 2


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
@pytest.mark.parametrize("rc", [1, 2, 137])
def test_crash_or_user_error_is_never_requeued(kind, rc, tmp_path, cfg):
    env = script_env(kind, tmp_path, stub=True, STUB_RC=str(rc))
    code, out = run_script(kind, cfg, env, tmp_path, timeout=60)
    assert code == rc, out
    assert requeues(tmp_path) == [], out
    assert len([line for line in stub_log(tmp_path) if line.startswith("launch")]) == 1, out
    assert ("configuration or usage error" if rc == 2 else "crashed") in out


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_exit_75_requeues_until_the_guard(kind, tmp_path, cfg):
    # Already restarted MAX times: exit 75 is passed on, but no further requeue / resubmission / loop.
    guard = {"slurm": {"SLURM_RESTART_COUNT": "3", "TVBINV_MAX_RESTARTS": "3"},
             "pbs": {"TVBINV_RESUBMIT_COUNT": "3", "TVBINV_MAX_RESUBMITS": "3"},
             "local": {"TVBINV_MAX_RESTARTS": "3"}}[kind]
    env = script_env(kind, tmp_path, stub=True, STUB_RC="75", **guard)
    code, out = run_script(kind, cfg, env, tmp_path, timeout=60)
    assert code == REQUEUE_EXIT, out
    assert requeues(tmp_path) == [], out
    assert "already re" in out and ("NOT" in out or "giving up" in out), out
    n_launch = len([line for line in stub_log(tmp_path) if line.startswith("launch")])
    assert n_launch == (4 if kind == "local" else 1), out  # local: first attempt + 3 restarts


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_exit_75_below_the_guard_requeues_with_the_settings(kind, tmp_path, cfg):
    extra = {"SLURM_RESTART_COUNT": "2"} if kind == "slurm" else {"TVBINV_RESUBMIT_COUNT": "2"}
    env = script_env(kind, tmp_path, stub=True, STUB_RC="75", TVBINV_VERB="simulate", **extra)
    code, out = run_script(kind, cfg, env, tmp_path, timeout=60)
    assert code == REQUEUE_EXIT, out
    (line,) = requeues(tmp_path)
    if kind == "slurm":
        assert line == f"scontrol requeue {SLURM_JOB}" and "restart 3/20" in out
        assert stub_log(tmp_path)[0] == f"launch --kill-on-bad-exit=0 --mpi=pmix tvbinv-hpc simulate {cfg}"
    else:
        args = shlex.split(line)
        passed = dict(kv.split("=", 1) for kv in args[args.index("-v") + 1].split(","))
        assert passed["TVBINV_RESUBMIT_COUNT"] == "3"
        assert passed["TVBINV_CONFIG"] == str(cfg) and passed["TVBINV_VERB"] == "simulate"
        assert passed["TVBINV_VENV"] == str(VENV)
        assert stub_log(tmp_path)[0].startswith("launch -n 2 ")  # ranks from PBS_NODEFILE
        assert args[args.index("-l") + 1] == "select=1:ncpus=2:mpiprocs=2"  # what this job got


@pytest.mark.parametrize("source", ["TVBINV_WALLTIME", "PBS_WALLTIME", "qstat"])
def test_pbs_time_budget_stops_the_run_before_the_walltime(source, tmp_path, cfg):
    # walltime = margin + 2 s: the internal timer sends USR1 about 2 s after the launch.
    walltime = {"TVBINV_WALLTIME": ("TVBINV_WALLTIME", "00:01:02"), "PBS_WALLTIME": ("PBS_WALLTIME", "62"),
                "qstat": ("FAKE_WALLTIME", "00:01:02")}[source]
    env = script_env("pbs", tmp_path, stub=True, STUB_WAIT="1", TVBINV_STOP_MARGIN="60",
                     **dict([walltime]))
    code, out = run_script("pbs", cfg, env, tmp_path, timeout=60)
    assert code == REQUEUE_EXIT, out
    assert "walltime 62 s, margin 60 s" in out
    assert "received SIGUSR1 (internal time budget" in out
    assert "got USR1" in stub_log(tmp_path)
    assert len(requeues(tmp_path)) == 1


def test_pbs_without_walltime_warns_and_relies_on_sigterm(tmp_path, cfg):
    env = script_env("pbs", tmp_path, stub=True, STUB_RC="0")
    code, out = run_script("pbs", cfg, env, tmp_path, timeout=60)
    assert code == 0, out
    assert "walltime unknown" in out and "finished: exit 0" in out


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_missing_config_or_venv_is_a_user_error_before_launch(kind, tmp_path):
    env = script_env(kind, tmp_path, stub=True, STUB_RC="0")
    code, out = run_script(kind, tmp_path / "nope.toml", env, tmp_path, timeout=60)
    assert code == 2 and "not found" in out, out
    env = script_env(kind, tmp_path, stub=True, STUB_RC="0", TVBINV_VENV=str(tmp_path / "novenv"))
    code, out = run_script(kind, tmp_path / "nope.toml", env, tmp_path, timeout=60)
    assert code == 2 and "no virtual environment" in out, out
    assert stub_log(tmp_path) == [] and requeues(tmp_path) == []


@pytest.mark.parametrize("extra,launch,note", [
    ({}, "--kill-on-bad-exit=0 --mpi=pmix", "srun --mpi=pmix (MpiDefault is 'none'; pmix is available)"),
    ({"FAKE_MPI_DEFAULT": "pmi2"}, "--kill-on-bad-exit=0", "srun --mpi=pmi2 (the site's MpiDefault)"),
    ({"FAKE_SRUN_MPI_LIST": "none pmi2"}, "--kill-on-bad-exit=0", "srun offers no pmix"),
    ({"TVBINV_SRUN_MPI": "pmi2"}, "--kill-on-bad-exit=0 --mpi=pmi2", "srun --mpi=pmi2 (TVBINV_SRUN_MPI)"),
    ({"TVBINV_SRUN_MPI": "site"}, "--kill-on-bad-exit=0", "the site default"),
    ({"TVBINV_SRUN_ARGS": "--mpi=pmi2 --cpu-bind=cores"}, "--kill-on-bad-exit=0 --mpi=pmi2 --cpu-bind=cores",
     "from TVBINV_SRUN_ARGS"),
    ({"SLURM_MPI_TYPE": "pmi2"}, "--kill-on-bad-exit=0", "srun --mpi=pmi2 from SLURM_MPI_TYPE"),
], ids=["auto-pmix", "site-default", "no-pmix", "forced", "site", "srun-args", "env"])
def test_slurm_picks_the_pmi_for_srun(extra, launch, note, tmp_path, cfg):
    env = script_env("slurm", tmp_path, stub=True, STUB_RC="0", **extra)
    code, out = run_script("slurm", cfg, env, tmp_path, timeout=60)
    assert code == 0, out
    assert stub_log(tmp_path) == [f"launch {launch} tvbinv-hpc run {cfg}"], out
    assert note in out
    assert sched_log(tmp_path) == []  # `scontrol show config` is a query, not a request


def test_slurm_launch_failing_for_pmi_reasons_says_what_to_set(tmp_path, cfg):
    # The stand-in srun fails as Debian's Open MPI does when srun does not start the ranks with PMIx.
    env = script_env("slurm", tmp_path, stub=False, TVBINV_SRUN_MPI="pmi2")
    code, out = run_script("slurm", cfg, env, tmp_path, timeout=60)
    assert code == 1, out
    assert "not built with SLURM's PMI support" in out
    assert "crashed" in out and "NOT requeueing" in out
    assert "hint:" in out and "TVBINV_SRUN_MPI=pmix" in out and "srun --mpi=pmi2 (TVBINV_SRUN_MPI)" in out
    assert requeues(tmp_path) == []


def test_pbs_resubmission_asks_for_the_resources_of_this_job(tmp_path, cfg):
    env = script_env("pbs", tmp_path, stub=True, STUB_RC="75", FAKE_SELECT="2:ncpus=2:mpiprocs=2",
                     FAKE_PBS_NODES="2", FAKE_WALLTIME="00:30:00", FAKE_ACCOUNT="proj42")
    code, out = run_script("pbs", cfg, env, tmp_path, timeout=60)
    assert code == REQUEUE_EXIT, out
    (line,) = requeues(tmp_path)
    args = shlex.split(line)
    given = [args[i + 1] for i, a in enumerate(args) if a == "-l"]
    assert given == ["select=2:ncpus=2:mpiprocs=2", "walltime=00:30:00"], line
    assert args[args.index("-A") + 1] == "proj42"


def test_pbs_resubmission_that_the_server_refuses_is_reported(tmp_path, cfg):
    # qstat does not know this job: the next job would get the script's own select=1:ncpus=32, which a
    # 2-core server refuses (as a real qsub does), so nothing is resubmitted and the log says why.
    env = script_env("pbs", tmp_path, stub=True, STUB_RC="75", FAKE_QSTAT_JOB="other.fake")
    code, out = run_script("pbs", cfg, env, tmp_path, timeout=60)
    assert code == REQUEUE_EXIT, out
    assert "resources of job 77.fake unknown" in out
    assert "qsub: Job exceeds queue resource limits (select ncpus=32 > 2 cores per node)" in out
    assert "qsub failed" in out and requeues(tmp_path) == []


@pytest.mark.parametrize("args,env,rc,message", [
    (["-l", "select=1:ncpus=2:mpiprocs=2"], {}, 0, "78.fake"),
    ([], {}, 188, "select ncpus=32 > 2 cores per node"),                      # the script's own #PBS -l
    (["-l", "select=1:ncpus=2:mpiprocs=4"], {}, 188, "mpiprocs=4 > ncpus=2"),
    (["-l", "select=3:ncpus=2"], {"FAKE_PBS_NODES": "2"}, 188, "asks for 3 nodes, 2 exist"),
    (["-l", "nodes=1:ppn=4"], {}, 188, "ppn=4 > 2 cores per node"),
    (["-l", "select=1:ncpus=2", "-v", "A=1,B"], {}, 0, "78.fake"),
    (["-l", "select=1:ncpus=2", "-v", "A=1,=2"], {}, 2, "illegal -v entry: =2"),
    (["-l", "select=1:ncpus=2", "-Z"], {}, 2, "invalid option"),
], ids=["fits", "script-default", "mpiprocs", "nodes", "torque", "vars", "bad-vars", "bad-option"])
def test_stand_in_qsub_is_as_strict_as_a_server(tmp_path, args, env, rc, message):
    full = {**os.environ, "FAKE_SCHED_LOG": str(tmp_path / "sched.log"), "FAKE_PBS_NCPUS": "2", **env}
    res = subprocess.run(["bash", str(FAKES / "qsub"), *args, str(SCRIPTS["pbs"])], capture_output=True,
                         text=True, env=full, timeout=30)
    assert res.returncode == rc, res.stderr
    assert message in (res.stdout if rc == 0 else res.stderr)
    assert len(requeues(tmp_path)) == (1 if rc == 0 else 0)
    res = subprocess.run(["bash", str(FAKES / "qsub"), str(tmp_path / "missing.sh")], capture_output=True,
                         text=True, env=full, timeout=30)
    assert res.returncode == 2 and "could not open script file" in res.stderr


def test_stand_in_qstat_knows_only_the_running_job_and_wraps_long_lines(tmp_path):
    env = {**os.environ, "PBS_JOBID": PBS_JOB, "FAKE_SELECT": "1:ncpus=2", "PBS_O_WORKDIR": "/x" * 40}
    res = subprocess.run(["bash", str(FAKES / "qstat"), "-f", "99.other"], capture_output=True, text=True,
                         env=env, timeout=30)
    assert res.returncode == 153 and "Unknown Job Id 99.other" in res.stderr
    res = subprocess.run(["bash", str(FAKES / "qstat"), "-f", PBS_JOB], capture_output=True, text=True,
                         env=env, timeout=30)
    assert res.returncode == 0 and "    Resource_List.select = 1:ncpus=2\n" in res.stdout
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 79 and any(line.startswith("\t") for line in lines)


# ---------------------------------------------------------------------------------------------- real runs
def _check_stopped_with_pending(store: Path, out: str) -> int:
    pending = int((store_status(store) == 0).sum())
    assert pending > 0, f"the run finished before the stop took effect:\n{out}"
    assert "stopped by signal" in status_text(store)
    return pending


def _check_complete(store: Path, sessions: int) -> None:
    assert not (store_status(store) == 0).any()
    text = status_text(store)
    assert text.rstrip().splitlines()[-1] == "  complete", text
    assert f"sessions: {sessions}" in text, text


@pytest.mark.mpi
@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind,extra,ranks", [("slurm", {"SLURM_CPUS_PER_TASK": "2"}, 2),
                                              ("local", {"TVBINV_NP": "1", "TVBINV_THREADS": "2"}, 1)])
def test_hybrid_ranks_times_threads(kind, extra, ranks, tmp_path, cfg):
    """--cpus-per-task (SLURM) or TVBINV_THREADS (local.sh): every rank simulates on that many threads."""
    from tvbinv_hpc.parallel.store import sessions

    store = tmp_path / "out" / "store.h5"
    env = script_env(kind, tmp_path, stub=False, TVBINV_VERB="simulate", **extra)
    code, out = run_script(kind, cfg, env, tmp_path, timeout=180)
    assert code == 0, out
    assert f"simulating on {ranks} rank(s) x 2 thread(s) per rank" in out, out
    _check_complete(store, sessions=1)
    assert sessions(store)[-1]["threads"] == [2] * ranks


@pytest.mark.mpi
@pytest.mark.timeout(240)
def test_slurm_usr1_to_batch_shell_requeues_then_the_requeued_job_completes(tmp_path, cfg):
    store = tmp_path / "out" / "store.h5"
    env = script_env("slurm", tmp_path, stub=False, TVBINV_VERB="simulate", TVBINV_TEST_BATCH_DELAY="0.5")
    proc = start("slurm", cfg, env, tmp_path)
    try:
        wait_for(lambda: rows_done(store) >= 3, "3 rows in the store", proc)
        os.kill(proc.pid, signal.SIGUSR1)  # what --signal=B:USR1@120 does
        out = finish(proc, 120)
    finally:
        kill(proc)
    assert proc.returncode == REQUEUE_EXIT, out
    assert "received SIGUSR1: forwarding SIGUSR1 to srun" in out
    _check_stopped_with_pending(store, out)
    assert requeues(tmp_path) == [f"scontrol requeue {SLURM_JOB}"], out
    # SLURM runs the requeued job: same script, same arguments, SLURM_RESTART_COUNT=1.
    env.update(SLURM_RESTART_COUNT="1", TVBINV_TEST_BATCH_DELAY="0")
    code, out = run_script("slurm", cfg, env, tmp_path, timeout=180)
    assert code == 0, out
    assert "restart 1/20" in out and "finished: exit 0" in out
    assert requeues(tmp_path) == [f"scontrol requeue {SLURM_JOB}"]  # no second requeue
    _check_complete(store, sessions=2)


@pytest.mark.mpi
@pytest.mark.timeout(240)
def test_pbs_time_budget_stops_mid_run_resubmits_then_the_next_job_completes(tmp_path, small_config):
    cfg = small_config(n_sims=48, batch=1)
    store = tmp_path / "out" / "store.h5"
    # Budget: walltime - margin = 20 s after the start.  The ranks only catch USR1 once the simulate phase
    # has begun (before that it kills them: start-up takes 5-10 s on 2 busy cores, numba compilation on
    # each rank in turn); then 48 batches of >= 1 s on 2 ranks last >= 24 s, beyond the budget.
    env = script_env("pbs", tmp_path, stub=False, TVBINV_VERB="simulate", TVBINV_TEST_BATCH_DELAY="1.0",
                     TVBINV_WALLTIME="00:01:20", TVBINV_STOP_MARGIN="60")
    code, out = run_script("pbs", cfg, env, tmp_path, timeout=180)
    assert code == REQUEUE_EXIT, out
    assert "received SIGUSR1 (internal time budget" in out
    _check_stopped_with_pending(store, out)
    (line,) = requeues(tmp_path)
    args = shlex.split(line)
    assert args[args.index("-W") + 1] == f"depend=afterany:{PBS_JOB}", line
    # PBS starts the resubmitted job: the script qsub got, the variables passed with -v, a new job id.
    passed = dict(kv.split("=", 1) for kv in args[args.index("-v") + 1].split(","))
    assert passed["TVBINV_RESUBMIT_COUNT"] == "1" and passed["TVBINV_CONFIG"] == str(cfg)
    env = script_env("pbs", tmp_path, stub=False, PBS_JOBID="78.fake", **passed)
    env.update(TVBINV_TEST_BATCH_DELAY="0", TVBINV_WALLTIME="01:00:00")
    proc = subprocess.Popen(["bash", args[-1]], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out = finish(proc, 180)
    finally:
        kill(proc)
    assert proc.returncode == 0, out
    assert "resubmission 1/20" in out and "finished: exit 0" in out
    assert len(requeues(tmp_path)) == 1
    _check_complete(store, sessions=2)


@pytest.mark.mpi
@pytest.mark.timeout(240)
def test_local_usr1_checkpoints_and_loops_until_complete(tmp_path, cfg):
    from tvbinv_hpc.parallel.store import sessions

    store = tmp_path / "out" / "store.h5"
    env = script_env("local", tmp_path, stub=False, TVBINV_VERB="simulate", TVBINV_TEST_BATCH_DELAY="0.5")
    proc = start("local", cfg, env, tmp_path)
    try:
        wait_for(lambda: rows_done(store) >= 3, "3 rows in the store", proc)
        os.kill(proc.pid, signal.SIGUSR1)
        out = finish(proc, 180)
    finally:
        kill(proc)
    assert proc.returncode == 0, out
    assert "received SIGUSR1: forwarding SIGUSR1 to mpiexec" in out
    assert "exit 75: checkpointed with work left; restarting (restart 1/20)" in out
    assert "attempt 2 (restart 1/20)" in out and "finished: exit 0" in out
    _check_complete(store, sessions=2)
    first, second = sessions(store)
    assert first["stopped_by_signal"] and not second.get("stopped_by_signal")
    assert 0 < first["rows_done"] < 24 and first["rows_done"] + second["rows_done"] == 24


@pytest.mark.mpi
@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_bad_config_exits_2_and_is_not_requeued(kind, tmp_path, cfg):
    cfg.write_text(cfg.read_text().replace("dt = 0.02", "dt = -0.02"))
    env = script_env(kind, tmp_path, stub=False, TVBINV_VERB="simulate")
    code, out = run_script(kind, cfg, env, tmp_path, timeout=120)
    assert code == 2, out
    assert "integrator.dt" in out and "must be > 0" in out
    assert requeues(tmp_path) == [], out
    assert "NOT requeueing" in out or "NOT resubmitting" in out or "not restarting" in out
    assert "attempt 2" not in out
    assert not (tmp_path / "out" / "store.h5").exists()
