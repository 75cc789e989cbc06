"""MPI plumbing, the HDF5 store and the simulate driver."""
