"""``tvbinv-hpc launch -n P -- VERB ...``: start this venv's tvbinv-hpc under mpiexec with the flags that
Open MPI needs here (root, more ranks than cores), so that users and tests never have to know them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


def mpiexec_command(n: int) -> list[str]:
    exe = shutil.which("mpiexec") or shutil.which("mpirun")
    if exe is None:
        raise SystemExit("tvbinv-hpc launch: mpiexec not found (install openmpi-bin, or run without a launcher)")
    cmd = [exe, "-n", str(n)]
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in out or "OpenRTE" in out:
        if os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        if n > (os.cpu_count() or 1):
            cmd.append("--oversubscribe")
        cmd += ["--bind-to", "none"]  # threads are pinned per rank by tvbinv_hpc itself
    return cmd


def launch(n: int, command: list[str], timeout: float | None = None) -> int:
    if command and command[0] == "--":
        command = command[1:]
    cmd = mpiexec_command(n) + [sys.executable, "-m", "tvbinv_hpc", *command]
    if timeout:
        cmd = ["timeout", "--signal=KILL", str(timeout)] + cmd
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130
