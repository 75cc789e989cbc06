# tvbinv_hpc — the two set-up commands are `make demo` and `make test`.
# Both install what they need on first use (system MPI + parallel HDF5 as root, a .venv with
# h5py built against Debian's MPI HDF5) and then only check a stamp: a second run takes seconds.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tvbinv-installed
PYTEST_ARGS ?=
NP ?= 2

.PHONY: help install demo test lint bench clean
help:
	@echo "make demo   - install if needed, run the built-in quickstart under mpiexec -n $(NP)"
	@echo "make test   - install if needed, run unit tests and MPI tests (mpiexec -n 2 and -n 3)"

install: $(STAMP)

# The stamp depends on the files that define what gets installed.
$(STAMP): setup.cfg pyproject.toml .ci/install.sh
	bash .ci/install.sh $(VENV)

demo: $(STAMP)
	$(BIN)/tvbinv-hpc launch -n $(NP) -- run quickstart

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check tvbinv_hpc tests

bench: $(STAMP)
	$(BIN)/tvbinv-hpc bench

clean:
	rm -rf $(VENV) build *.egg-info
