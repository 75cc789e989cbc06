"""A real single-node SLURM for tests/test_slurm_real.py, set up by hand (no systemd): munged, slurmctld -D
and slurmd -D started in the background with a minimal slurm.conf for this host, everything (config,
munge key and socket, state, spool, logs, pid files) under one temp folder, on free ports, so that it
never touches a system SLURM or munge.

* Installs Debian's ``slurm-wlm munge`` with apt-get when they are missing and we are root.
* Idempotent: daemons left running by an earlier session (same folder, alive, answering) are adopted
  after their jobs are cancelled; stale ones (dead or not answering) are stopped by their recorded pid
  (only processes whose command line names this folder) and the folder is made afresh.
* ``Unavailable`` carries the reason why SLURM cannot be installed or started here (the test skips).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SBIN = "/usr/sbin:/sbin"
DAEMONS = ("munged", "slurmctld", "slurmd")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
            "DEADLINE", "PREEMPTED"}


CRED_SECOND_MARGIN_S = 2.5   # see Cluster.skip_begin_time


class Unavailable(Exception):
    """SLURM cannot be installed or started on this machine (the message says why)."""


def base_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"tvbinv-slurm-{os.getuid()}"


def _path() -> str:
    return f"{os.environ.get('PATH', '')}{os.pathsep}{SBIN}"


def which(name: str) -> str | None:
    return shutil.which(name, path=_path())


def install() -> None:
    """apt-get install slurm-wlm munge when a command is missing (root with apt-get only)."""
    missing = [c for c in ("sbatch", "srun", "scontrol", "slurmctld", "slurmd", "munged", "munge") if not which(c)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"SLURM is not installed ({', '.join(missing)} missing) and cannot be installed "
                          "here (needs root and apt-get: apt-get install slurm-wlm munge)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"`{' '.join(cmd)}` did not finish in 900 s") from None
        if res.returncode != 0 and cmd[1] == "install":
            raise Unavailable(f"`{' '.join(cmd)}` failed ({res.returncode}): {(res.stderr or res.stdout)[-800:]}")
    still = [c for c in missing if not which(c)]
    if still:
        raise Unavailable(f"apt-get installed slurm-wlm munge but {', '.join(still)} are still missing")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _node_line() -> str:
    """This host's hardware as slurmd sees it (`slurmd -C`), CPUs at least 2 (the tests run 2 ranks)."""
    res = subprocess.run([which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=60)
    first = res.stdout.splitlines()[0] if res.stdout.strip() else ""
    fields = dict(kv.split("=", 1) for kv in first.split() if "=" in kv)
    if "CPUs" not in fields:
        raise Unavailable(f"`slurmd -C` did not describe this node: {res.stdout!r} {res.stderr[-300:]!r}")
    fields.pop("NodeName", None)
    fields.pop("UpTime", None)
    fields["CPUs"] = str(max(2, int(fields["CPUs"])))
    if int(fields.get("CoresPerSocket", "1")) * int(fields.get("SocketsPerBoard", "1")) * int(
            fields.get("Boards", "1")) * int(fields.get("ThreadsPerCore", "1")) < int(fields["CPUs"]):
        for k in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"):
            fields.pop(k, None)
    fields["RealMemory"] = str(max(100, int(int(fields.get("RealMemory", "1000")) * 0.9)))
    return " ".join(f"{k}={v}" for k, v in fields.items())


CONF = """\
# tvbinv_hpc test cluster (tests/slurm_local.py): one node, daemons started by hand
ClusterName=tvbinvci
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={base}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
JobRequeue=1
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={host} {hardware} State=UNKNOWN
PartitionName=ci Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


class Cluster:
    def __init__(self, base: Path):
        self.base = base
        self.conf = base / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.adopted = False

    # ------------------------------------------------------------------ commands
    def env(self, **extra: str) -> dict[str, str]:
        """The environment for SLURM commands and jobs: ours, without SLURM_*/PBS_*, with SLURM_CONF."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SRUN_", "SBATCH_", "PBS_"))}
        env.update(SLURM_CONF=str(self.conf), PATH=_path())
        env.update(extra)
        return env

    def run(self, *cmd: str, timeout: float = 60, env: dict[str, str] | None = None,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              env=env or self.env(), cwd=cwd)

    def ping(self) -> bool:
        try:
            res = self.run("scontrol", "ping", timeout=20)
        except (subprocess.TimeoutExpired, OSError):
            return False
        return res.returncode == 0 and "UP" in res.stdout

    def node_state(self) -> str:
        res = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", timeout=20)
        return res.stdout.strip().lower()

    def sbatch(self, *args: str, env: dict[str, str], cwd: Path) -> str:
        res = self.run("sbatch", "--parsable", *args, env=env, cwd=cwd)
        if res.returncode != 0:
            raise AssertionError(f"sbatch {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res.stdout.strip().split(";")[0]

    def job(self, jobid: str) -> dict[str, str]:
        res = self.run("scontrol", "show", "job", "-o", jobid, timeout=20)
        return dict(re.findall(r"(\w+)=(\S*)", res.stdout)) if res.returncode == 0 else {}

    def ctld_log(self, jobid: str) -> str:
        """slurmctld's log lines about one job (why it was requeued, failed or timed out)."""
        try:
            lines = (self.base / "log" / "slurmctld.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(ln for ln in lines if re.search(rf"JobId={jobid}\b|job {jobid}\b", ln))

    def jobs(self) -> list[str]:
        res = self.run("squeue", "-h", "-o", "%i", timeout=20)
        return res.stdout.split()

    def cancel_all(self, timeout: float = 60) -> None:
        ids = self.jobs()
        if ids:
            self.run("scancel", *ids, timeout=30)
        t0 = time.monotonic()
        while self.jobs() and time.monotonic() - t0 < timeout:
            time.sleep(0.5)

    def skip_begin_time(self, jobid: str) -> None:
        """A requeued job waits ~2 min for its BeginTime before it may start again: start it now — but not
        within the second of the requeue. slurmd revokes the old run's credential with a timestamp in
        whole seconds and refuses a credential issued in that same second ("Job credential revoked": the
        requeued job fails at once, seen in CI when the update came 50 ms after the requeue)."""
        time.sleep(CRED_SECOND_MARGIN_S)
        self.run("scontrol", "update", f"JobId={jobid}", "StartTime=now", timeout=20)

    def wait_done(self, jobid: str, timeout: float) -> tuple[dict[str, str], int]:
        """Wait until the job ends for good, skipping the BeginTime hold after each requeue.
        Returns the final job record and how many times the hold was skipped."""
        t0, skipped, seen_restarts, last = time.monotonic(), 0, 0, {}
        while time.monotonic() - t0 < timeout:
            info = self.job(jobid)
            if info:
                last = info
                state, reason = info.get("JobState", ""), info.get("Reason", "")
                restarts = int(info.get("Restarts", "0") or 0)
                if state == "PENDING" and reason == "BeginTime" and restarts > seen_restarts:
                    self.skip_begin_time(jobid)
                    seen_restarts = restarts
                    skipped += 1
                elif state in TERMINAL:
                    time.sleep(2)  # still terminal a moment later: not a requeue in progress
                    again = self.job(jobid)
                    if again.get("JobState") == state and again.get("Restarts") == info.get("Restarts"):
                        return again, skipped
            time.sleep(0.5)
        self.run("scancel", jobid, timeout=30)
        raise AssertionError(f"job {jobid} did not end within {timeout} s: {last}")

    # ------------------------------------------------------------------ daemons
    def _record(self) -> dict[str, int]:
        try:
            return json.loads((self.base / "daemons.json").read_text())
        except (OSError, ValueError):
            return {}

    def _ours(self, pid: int) -> bool:
        """The process is alive and one of our daemons (its command line names our folder)."""
        try:
            return str(self.base) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False

    def alive(self) -> bool:
        rec = self._record()
        return bool(rec) and all(self._ours(rec.get(d, -1)) for d in DAEMONS)

    def stop(self) -> None:
        """Cancel jobs, shut the daemons down (by our recorded pids only)."""
        if self.conf.exists() and self.ping():
            self.cancel_all(timeout=30)
            self.run("scontrol", "shutdown", timeout=30)
        rec = self._record()
        for name in ("slurmd", "slurmctld", "munged"):
            pid = rec.get(name, -1)
            t0 = time.monotonic()
            while self._ours(pid) and time.monotonic() - t0 < 15:
                try:
                    os.kill(pid, signal.SIGTERM if time.monotonic() - t0 < 10 else signal.SIGKILL)
                except ProcessLookupError:
                    break
                time.sleep(0.3)
        (self.base / "daemons.json").unlink(missing_ok=True)

    def log_tail(self, n: int = 1500) -> str:
        out = []
        for f in sorted((self.base / "log").glob("*")):
            try:
                out.append(f"--- {f.name}\n{f.read_text(errors='replace')[-n:]}")
            except OSError:
                pass
        return "\n".join(out)

    def start(self) -> None:
        if self.alive() and self.ping():
            self.adopted = True
            self.cancel_all()
            self._wait_node()
            return
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        for d in ("munge", "state", "spool", "log"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o711)
        (self.base / "munge").chmod(0o711)
        key = self.base / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        ctld_port, slurmd_port = _free_ports(2)
        self.conf.write_text(CONF.format(base=self.base, host=socket.gethostname(), node=self.node,
                                         ctld_port=ctld_port, slurmd_port=slurmd_port, hardware=_node_line()))
        log = self.base / "log"
        sock = self.base / "munge" / "munge.socket"
        pids = {"munged": self._spawn([which("munged"), "-F", "--force", f"--socket={sock}", f"--key-file={key}",
                                       f"--pid-file={self.base}/munge/munged.pid",
                                       f"--seed-file={self.base}/munge/munged.seed",
                                       f"--log-file={log}/munged.log"], log / "munged.out")}
        self._write_record(pids)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20 and not self._munge_ok(sock):
            time.sleep(0.3)
        if not self._munge_ok(sock):
            raise Unavailable(f"munged did not start:\n{self.log_tail()}")
        pids["slurmctld"] = self._spawn([which("slurmctld"), "-D", "-f", str(self.conf)], log / "slurmctld.out")
        self._write_record(pids)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and not self.ping():
            time.sleep(0.5)
        if not self.ping():
            raise Unavailable(f"slurmctld did not answer `scontrol ping` within 60 s:\n{self.log_tail()}")
        pids["slurmd"] = self._spawn([which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node],
                                     log / "slurmd.out")
        self._write_record(pids)
        self._wait_node()

    def _wait_node(self, timeout: float = 90) -> None:
        t0 = time.monotonic()
        state = ""
        while time.monotonic() - t0 < timeout:
            state = self.node_state()
            if state in ("idle", "mixed", "allocated"):
                return
            if state.startswith(("down", "drain")):
                self.run("scontrol", "update", f"NodeName={self.node}", "State=RESUME", timeout=20)
            time.sleep(0.5)
        raise Unavailable(f"node {self.node} not idle after {timeout} s (state {state!r}):\n{self.log_tail()}")

    def _spawn(self, cmd: list[str | None], out: Path) -> int:
        with open(out, "ab") as fh:
            p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                 cwd=self.base, env=self.env(), start_new_session=True)
        return p.pid

    def _write_record(self, pids: dict[str, int]) -> None:
        (self.base / "daemons.json").write_text(json.dumps(pids))

    def _munge_ok(self, sock: Path) -> bool:
        if not sock.exists():
            return False
        try:
            enc = subprocess.run([which("munge") or "munge", "-n", f"--socket={sock}"], capture_output=True,
                                 timeout=10)
            dec = subprocess.run([which("unmunge") or "unmunge", f"--socket={sock}"], input=enc.stdout,
                                 capture_output=True, timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            return False
        return enc.returncode == 0 and dec.returncode == 0


def start_cluster() -> Cluster:
    """Install if needed, then start (or adopt) the test cluster; raises Unavailable with the reason."""
    if os.geteuid() != 0:
        raise Unavailable("the test cluster runs slurmctld/slurmd as root (run the tests as root)")
    install()
    c = Cluster(base_dir())
    c.start()
    return c
