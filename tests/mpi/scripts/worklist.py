"""The work list hands every rank exactly the pending rows it claimed, read from rank 0's window, and the
theta reader returns the stored theta of those rows (any order, with gaps) without HDF5."""
import sys
from pathlib import Path

import numpy as np

from tvbinv_hpc.parallel import mpi, store
from tvbinv_hpc.parallel.counter import Counter, WorkList

c = mpi.comm()
path = Path(sys.argv[1])
rows = None
if c.Get_rank() == 0:
    rows = np.flatnonzero(np.arange(1000) % 7 != 3)   # pending rows with gaps
offset, shape = c.bcast(store.theta_location(path) if c.Get_rank() == 0 else None, root=0)
wl = WorkList(c, rows)
thetas = store.ThetaReader(path, offset, shape)
ctr = Counter(c)
got, bad = [], 0
while True:
    start = ctr.take(5)
    if start >= wl.size:
        break
    mine = wl.get(start, 5)
    th = thetas.read(mine[::-1])          # reversed: the reader keeps the caller's order
    bad += int(not np.array_equal(th[:, 0], mine[::-1] * 10.0 + 0.5))
    got += list(mine)
every = c.gather(got, root=0)
bad = c.allreduce(bad)
ctr.free()
wl.free()
thetas.close()
if c.Get_rank() == 0:
    flat = sorted(sum(every, []))
    assert flat == list(rows), (len(flat), len(rows))
    assert bad == 0, bad
    assert wl.dtype == np.dtype("u4"), wl.dtype
    print("worklist", [len(e) for e in every], "ok")
