"""`tvbinv-hpc bench --store` runs end to end (its figures are for the README, not asserted)."""
import json

import pytest

pytestmark = pytest.mark.mpi


def test_bench_store_measures_every_operation(run_cli, tmp_path):
    out = tmp_path / "store.json"
    res = run_cli(["bench", "--store", "--rows", "400", "--params", "5", "--seconds", "2", "--json", str(out)],
                  timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "peak RSS MB per rank" in res.stdout and "counter fetch-and-add" in res.stdout
    got = json.loads(out.read_text())
    (row,) = got["stores"]
    assert row["rows"] == 400 and row["params"] == 5 and row["train_rows"] == 360
    assert row["sim_rows"] > 0 and len(row["peak_rss_mb"]) == 2
    assert got["rma"]["take_us"] > 0 and got["rma"]["worklist_get_us"] > 0
