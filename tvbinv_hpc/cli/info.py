"""``tvbinv-hpc info``: one consistent report of versions, MPI and HDF5 support and the rank layout."""
from __future__ import annotations

import sys
from typing import Any

from tvbinv_hpc._version import __version__
from tvbinv_hpc.provenance import versions


def _torch_devices() -> str:
    import torch

    if not torch.cuda.is_available():
        return f"cpu only (torch {torch.__version__} sees no CUDA device)"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return "cpu, " + ", ".join(f"cuda:{i} {n}" for i, n in enumerate(names))


def report(comm: Any) -> str:
    """Gathers every rank's host and thread settings so that the printed report covers the whole job."""
    from tvbinv_hpc.parallel import mpi

    v = versions()
    me = (mpi.hostname(), str(mpi.threads_per_rank()), v["numpy"], v["h5py"])
    ranks = comm.gather(me, root=0)
    if comm.Get_rank() != 0:
        return ""
    lines = [f"tvbinv-hpc {__version__}", f"  python       {v['python']} ({sys.executable})"]
    for k in ("numpy", "numba", "scipy", "torch", "sbi", "tvb-library", "netCDF4", "xarray", "h5py"):
        lines.append(f"  {k:<12} {v[k]}")
    lines.append(f"  {'HDF5':<12} {v['hdf5']} (MPI-enabled: {v['hdf5_mpi']}; "
                 + ("ranks write the store in parallel)" if v["hdf5_mpi"] == "True"
                    else "the store will be written by rank 0)"))
    lines.append(f"  {'mpi4py':<12} {v['mpi4py']}")
    lines.append(f"  {'MPI':<12} {v['mpi']}")
    hosts = sorted({r[0] for r in ranks})
    threads = [int(r[1]) for r in ranks]
    per_rank = str(threads[0]) if len(set(threads)) == 1 else "/".join(map(str, threads))
    lines.append(f"  ranks        {comm.Get_size()} on {len(hosts)} host(s): {', '.join(hosts)}; "
                 f"threads per rank {per_rank}")
    lines.append(f"  simulation   {comm.Get_size()} rank(s) x {per_rank} thread(s) = {sum(threads)} threads "
                 "(budget.threads 'auto')")
    lines.append(f"  training     rank 0, torch device(s): {_torch_devices()} ([train] device)")
    if len({r[2:] for r in ranks}) > 1:
        lines.append("  WARNING: ranks run different numpy/h5py versions")
    return "\n".join(lines)
