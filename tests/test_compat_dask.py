"""run_dask on a LocalCluster of two worker processes: the same store and rows, bit for bit, as run_local;
resume after lost rows and after a failing task; clear refusals; dask stays an optional import."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

# A plain import, not importorskip: `make test` installs the dask extra, and a skip would hide a broken install.
import distributed
import h5py
import numpy as np
import pytest
from tvbinv_support import assert_same_store
from tvbinv_support import store_rows as rows

from tvbinv_hpc.errors import TvbinvError
from tvbinv_hpc.parallel import store

ROOT = Path(__file__).resolve().parents[1]
N = 8
RUN = {"ms_per_unit": 10.0, "bold_tr": 100.0, "progress": "none"}


@pytest.fixture(scope="module")
def client():
    # Worker processes, as on a real cluster: the seq, metrics and results must travel pickled.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from test_compat import build

    from tvbinv_hpc import run_local

    _, seq, metrics = build(n=N)
    out = run_local(seq, metrics, filename=tmp_path_factory.mktemp("dask") / "ref.h5", save_bold=True,
                    batch_size=3, **RUN)
    assert out.pending == 0
    return out.path, seq, metrics


@pytest.fixture(scope="module")
def dask_store(reference, client, tmp_path_factory):
    from tvbinv_hpc import run_dask

    _, seq, metrics = reference
    got = []
    out = run_dask(seq, metrics, client, tmp_path_factory.mktemp("dask") / "dask.h5", got.append,
                   save_bold=True, batch_size=2, **RUN)
    return out, got


def test_run_dask_writes_run_locals_rows_bit_for_bit(reference, dask_store):
    out, got = dask_store
    assert out.rows_done == N and out.pending == 0 and out.counts["ok"] + out.counts["diverged"] == N
    assert_same_store(reference[0], out.path)
    with h5py.File(reference[0], "r") as a, h5py.File(out.path, "r") as b:
        assert a["bold"][...].tobytes() == b["bold"][...].tobytes()
        assert a.attrs["config_hash"] == b.attrs["config_hash"]  # one store view: each resumes the other's
    (x,) = got  # the reduction: every row's statistics in seq order, as run_local hands them
    ok = rows(out.path)["status"] == store.OK
    assert np.array_equal(x[ok], rows(out.path)["x"][ok]) and np.isnan(x[~ok]).all()
    s = store.sessions(out.path)[-1]
    assert (s["backend"], s["workers"], s["threads"], s["batch_size"], s["rows_done"]) == ("dask", 2, [1], 2, N)
    from tvbinv_hpc.cli.inspect import status_text

    assert f"2 dask workers on {', '.join(s['hosts'])}, {N} rows" in status_text(out.path)


def test_resume_completes_exactly_the_pending_rows(reference, dask_store, client, tmp_path):
    from tvbinv_hpc import run_dask, run_local

    _, seq, metrics = reference
    copy = tmp_path / "copy.h5"
    shutil.copyfile(dask_store[0].path, copy)
    reset = [0, 3, 4, 7]
    with h5py.File(copy, "r+") as f:  # as if the client was killed before these rows were written
        for i in reset:
            f["status"][i] = store.PENDING
            f["x"][i] = np.nan
            f["bold"][i] = np.nan
    out = run_dask(seq, metrics, client, copy, save_bold=True, batch_size=3, **RUN)
    assert out.rows_done == len(reset) and out.pending == 0
    assert_same_store(reference[0], copy)
    with h5py.File(reference[0], "r") as a, h5py.File(copy, "r") as b:
        assert a["bold"][...].tobytes() == b["bold"][...].tobytes()
    assert run_dask(seq, metrics, client, copy, save_bold=True, **RUN).rows_done == 0
    assert run_local(seq, metrics, filename=copy, save_bold=True, **RUN).rows_done == 0
    assert [s.get("backend", "mpi") for s in store.sessions(copy)] == ["dask", "dask", "dask", "mpi"]


class FailWhileFlagged:
    """A custom metric that raises on the workers while its flag file exists (a broken task)."""

    names = ["bold_mean"]

    def __init__(self, flag: str):
        self.flag = flag

    def __call__(self, t, y):
        if Path(self.flag).exists():
            raise RuntimeError("flagged")
        return [float(np.mean(y))]


def test_a_failing_task_raises_and_the_store_resumes(reference, client, tmp_path):
    from tvbinv_hpc import run_dask

    path, seq, metrics = reference
    flag = tmp_path / "flag"
    flag.touch()
    metrics = [*metrics, FailWhileFlagged(str(flag))]
    with pytest.raises(RuntimeError, match="flagged"):
        run_dask(seq, metrics, client, tmp_path / "f.h5", batch_size=2, **RUN)
    s = store.sessions(tmp_path / "f.h5")[-1]
    assert s["error"] == "RuntimeError: flagged" and s["counts"]["pending"] == N - s["rows_done"]
    flag.unlink()
    out = run_dask(seq, metrics, client, tmp_path / "f.h5", batch_size=2, **RUN)
    assert out.pending == 0
    r, ref = rows(out.path), rows(path)
    assert np.array_equal(r["status"], ref["status"])
    assert r["x"][:, :-1].tobytes() == ref["x"].tobytes()


def test_bad_arguments_give_one_clear_error(reference, client, tmp_path, monkeypatch):
    from test_compat import build

    from tvbinv_hpc import run_dask

    path, seq, metrics = reference
    with pytest.raises(TvbinvError, match="dask.distributed Client"):
        run_dask(seq, metrics, "tcp://scheduler:8786", tmp_path / "a.h5", **RUN)
    with pytest.raises(TvbinvError, match="n_jobs must be a positive integer"):
        run_dask(seq, metrics, client, tmp_path / "a.h5", n_jobs=-1, **RUN)
    with pytest.raises(TvbinvError, match="reduction must be callable"):
        run_dask(seq, metrics, client, tmp_path / "a.h5", "no", **RUN)
    with pytest.raises(TvbinvError, match=r"changed: .*seq\.theta_sha256"):
        run_dask(build(n=N, seed=7)[1], metrics, client, path, save_bold=True, **RUN)
    assert not (tmp_path / "a.h5").exists()
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask were not installed
    with pytest.raises(TvbinvError, match=r"pip install 'tvbinv_hpc\[dask\]'"):
        run_dask(seq, metrics, client, tmp_path / "a.h5", **RUN)


def test_importing_the_api_does_not_import_dask():
    code = ("import sys, tvbinv_hpc, tvbinv_hpc.compat.tvb_inversion.utils as u\n"
            "assert tvbinv_hpc.run_dask is u.run_dask\n"
            "assert not {'dask', 'distributed'} & set(sys.modules), 'dask imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.mark.filterwarnings("ignore:Port .* is already in use")  # the dashboard moves: harmless
def test_readme_section_runs_as_written(reference, tmp_path, monkeypatch):
    path, seq, metrics = reference
    text = (ROOT / "README.md").read_text().split("### Without MPI: `run_dask` on a dask cluster", 1)[1]
    local, slurm = re.findall(r"```python\n(.*?)```", text.split("\n### ", 1)[0], re.S)
    compile(slurm, "README.md SLURMCluster block", "exec")  # dask-jobqueue is not installed here
    monkeypatch.chdir(tmp_path)
    ns = {"seq": seq, "metrics": metrics}
    exec(compile(local, "README.md LocalCluster block", "exec"), ns)
    assert ns["result"].rows_done == N and ns["result"].pending == 0
    assert_same_store(path, tmp_path / "test_run" / "results.h5")


def test_a_worker_that_builds_another_run_is_refused(reference):
    """A worker whose tvbinv_hpc gives another store view (here: a changed engine setting) would write
    rows that differ from the client's: it refuses the task, naming what differs."""
    from tvbinv_hpc.compat.dask_run import _Job, _worker_setup
    from tvbinv_hpc.compat.run import build

    _, seq, metrics = reference
    kw = dict(batch_size=2, ms_per_unit=10.0, bold_tr=100.0, bold_transient=0.0, tavg_period=None,
              save_bold=False, test_fraction=0.0)
    _, view = build(seq, metrics, **kw)
    assert _worker_setup(_Job("same", seq, metrics, kw, view, 1)).engine.threads == 1
    other = {**view, "engine": {**view["engine"], "numerics": "older"}}
    with pytest.raises(TvbinvError, match=r"builds a different run .*engine\.numerics"):
        _worker_setup(_Job("other", seq, metrics, kw, other, 1))
