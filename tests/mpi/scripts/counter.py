"""The one-sided counter hands out every item exactly once across ranks, even while rank 0 is busy."""
import time

from tvbinv_hpc.parallel import mpi
from tvbinv_hpc.parallel.counter import Counter

c = mpi.comm()
ctr = Counter(c)
mine = []
while True:
    start = ctr.take(3)
    if start >= 100:
        break
    mine += list(range(start, min(start + 3, 100)))
    if c.Get_rank() == 0:
        time.sleep(0.05)  # busy rank 0 (no MPI calls): the others must still progress
    ctr.add_done(len(range(start, min(start + 3, 100))), 0)
every = c.gather(mine, root=0)
done = ctr.read()[0] if c.Get_rank() == 0 else None
ctr.free()
if c.Get_rank() == 0:
    flat = sorted(sum(every, []))
    assert flat == list(range(100)), flat
    assert done == 100, done
    counts = [len(e) for e in every]
    assert counts[0] < max(counts[1:]), counts  # the busy rank took fewer items: dynamic
    print("counts", counts, "ok")
