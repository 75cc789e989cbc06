"""Measurements behind ``tvbinv-hpc bench``, one module per question; none is imported by the pipeline.

- engine.py: our engine against TVB's NbMPRBackend in the same process (per core, dense connectome,
  threads, lane refill, BOLD and feature costs); the verb's default
- scaling.py: parallel efficiency of ``simulate`` from 1 to P ranks and the HDF5 write share (--scaling)
- store.py: store operations and per-rank memory at 10^4 and 10^6 rows (--store)
- train.py: NPE training time (--train)
- stability.py: diverged fraction of the fixed and adaptive schemes at the seed's settings (--stability)
- features.py: cost of the summary statistics, used by engine.py
"""
