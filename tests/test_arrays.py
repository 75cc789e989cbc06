"""Matrix readers for the formats labs have: .mat (v5 and v7.3), .csv/.tsv/.txt with or without labels,
.npy/.npz; every failure names the file (and the variables to choose from)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from tvbinv_hpc.arrays import read_labels, read_matrix
from tvbinv_hpc.errors import InputError

A = np.arange(12, dtype=float).reshape(3, 4) / 7


def test_mat_v5_single_and_several_variables(tmp_path):
    scipy.io.savemat(tmp_path / "one.mat", {"sc": A})
    np.testing.assert_array_equal(read_matrix(tmp_path / "one.mat").values, A)
    scipy.io.savemat(tmp_path / "two.mat", {"sc": A, "len": 2 * A, "name": "subject 1"})
    with pytest.raises(InputError, match=r"several 2-D variables .*sc \(3, 4\).*len \(3, 4\)"):
        read_matrix(tmp_path / "two.mat")
    np.testing.assert_array_equal(read_matrix(tmp_path / "two.mat", "len").values, 2 * A)
    np.testing.assert_array_equal(read_matrix(tmp_path / "two.mat", preferred=("len",)).values, 2 * A)
    with pytest.raises(InputError, match="no variable 'tc'"):
        read_matrix(tmp_path / "two.mat", "tc")


def test_mat_v73_is_read_through_hdf5_in_matlab_orientation(tmp_path):
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:   # MATLAB v7.3: HDF5, column-major
        f["tc"] = A.T
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    np.testing.assert_array_equal(read_matrix(path).values, A)


@pytest.mark.parametrize("suffix,text", [
    (".csv", "0,1,2\n3,4,5\n"),
    (".tsv", "0\t1\t2\n3\t4\t5\n"),
    (".txt", "0 1 2\n3 4 5\n"),
    (".txt", "# a comment\n0, 1, 2\n3, 4, 5\n"),
])
def test_text_matrices(tmp_path, suffix, text):
    p = tmp_path / f"m{suffix}"
    p.write_text(text)
    np.testing.assert_array_equal(read_matrix(p).values, [[0, 1, 2], [3, 4, 5]])


def test_text_header_and_label_column(tmp_path):
    p = tmp_path / "sc.csv"
    p.write_text(",lA1,rA1\nlA1,0,2\nrA1,2,0\n")
    t = read_matrix(p)
    np.testing.assert_array_equal(t.values, [[0, 2], [2, 0]])
    assert t.column_labels == ["lA1", "rA1"] and t.row_labels == ["lA1", "rA1"]


def test_npy_npz_and_errors(tmp_path):
    np.save(tmp_path / "a.npy", A)
    np.testing.assert_array_equal(read_matrix(tmp_path / "a.npy").values, A)
    np.savez(tmp_path / "a.npz", x=A)
    np.testing.assert_array_equal(read_matrix(tmp_path / "a.npz").values, A)
    np.save(tmp_path / "b.npy", np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match="2-D array"):
        read_matrix(tmp_path / "b.npy")
    (tmp_path / "r.csv").write_text("1,2\n3\n")
    with pytest.raises(InputError, match="different lengths"):
        read_matrix(tmp_path / "r.csv")
    with pytest.raises(InputError, match="not found"):
        read_matrix(tmp_path / "none.mat")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(InputError, match="unknown matrix format"):
        read_matrix(tmp_path / "x.xlsx")


def test_labels_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("# AAL2\nPrecentral_L\nPrecentral_R\n\n")
    assert read_labels(p) == ["Precentral_L", "Precentral_R"]
