"""`tvbinv-hpc bench --parts` times each part of the kernel's step (its figures are for the README, not asserted)."""
import numpy as np

from tvbinv_hpc.bench import parts
from tvbinv_hpc.cli.main import main

THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def test_every_part_is_timed_next_to_the_whole_kernel():
    rows = parts.measure(nstep=512, repeats=1, lanes=2)
    names = [name for name, _ in rows]
    assert names[0].startswith("delayed coupling (ring") and names[1].startswith("delayed coupling delays / 4")
    assert [n.split(" ")[0] for n in names[2:]] == ["normals", "Heun", "ring", "average", "whole"]
    us = np.array([u for _, u in rows])
    assert np.all(np.isfinite(us)) and np.all(us > 0)
    ring_mb = [float(n.split("ring ")[1].split(" MB")[0]) for n in names[:2]]
    assert ring_mb[1] < ring_mb[0] / 2                     # the L2 variant really has a smaller ring
    lines = parts.report(rows)
    assert len(lines) == len(rows) + 1 and "sum of the parts" in lines[-2] and "whole kernel" in lines[-1]


def test_cli_route(capsys, monkeypatch):
    for var in THREAD_VARS:         # the bench pins them to 1 for its process: restore after the test
        monkeypatch.setenv(var, "1")
    assert main(["bench", "--parts", "--", "--steps", "256", "--repeats", "1", "--lanes", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kernel parts: connectivity_76") and "whole kernel (BOLD included)" in out
