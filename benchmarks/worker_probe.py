"""tradeweb's Celery application with timing probes, for `python -m benchmarks.switching --profile`
(`celery -A benchmarks.worker_probe worker ...`).

Nothing of tradeweb changes: in each pool process the probes wrap `advance_batch` (one transaction that locks the
rows of the market's strategies, takes a batch of candles and writes what they did) and `build_orchestrator`, and
write one JSON line each to the file named by WORKER_PROBE_LOG. Times are `time.perf_counter()`, the system's
monotonic clock on Linux, as the benchmark's and Daphne's probes.
"""

from __future__ import annotations

import json
import os
import time
from functools import wraps

from celery import signals

from tradeweb.celery import app

__all__ = ["app"]


@signals.worker_process_init.connect
def install_probes(**kwargs) -> None:
    """Wrap the batch and the build in this pool process (Django is set up by now)."""
    from tradeweb.desk import live, orchestrators

    log = open(os.environ["WORKER_PROBE_LOG"], "a", buffering=1)
    builds: list[dict] = []

    def note(kind: str, **fields) -> None:
        log.write(json.dumps({"kind": kind, "pid": os.getpid(), **fields}) + "\n")

    def probe_batch(advance_batch):
        @wraps(advance_batch)
        def probed(symbol, timeframe, outcome, only=None):
            builds.clear()
            taken = len(outcome.taken)
            started = time.perf_counter()
            try:
                return advance_batch(symbol, timeframe, outcome, only)
            finally:
                note("batch", start=started, end=time.perf_counter(), taken=len(outcome.taken) - taken,
                     builds=list(builds))
        return probed

    def probe_build(build_orchestrator):
        @wraps(build_orchestrator)
        def probed(strategy, before):
            started = time.perf_counter()
            try:
                return build_orchestrator(strategy, before)
            finally:
                builds.append({"strategy_id": strategy.strategy_id, "warm_up": strategy.snapshot is None,
                               "seconds": time.perf_counter() - started})
        return probed

    live.advance_batch = probe_batch(live.advance_batch)
    orchestrators.build_orchestrator = probe_build(orchestrators.build_orchestrator)
