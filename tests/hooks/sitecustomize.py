"""Test-only start-up hook, on PYTHONPATH for every process the tests start (tests/conftest.py).

With TVBINV_TEST_BATCH_DELAY set, each batch of the simulate phase takes that many seconds longer, so that
kill, signal and requeue tests land inside a run. It lives here because production code carries no test
hooks: the package never reads this variable.
"""
import os

_delay = float(os.environ.get("TVBINV_TEST_BATCH_DELAY") or 0)
if _delay > 0:
    import time

    from tvbinv_hpc.parallel import driver

    _simulate_batch = driver.simulate_batch

    def _slow_batch(*args, **kwargs):
        out = _simulate_batch(*args, **kwargs)
        time.sleep(_delay)
        return out

    driver.simulate_batch = _slow_batch
