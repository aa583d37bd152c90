"""Timing a repeated call, for the benchmark scripts: wall time and process CPU time.

Imported by the scripts beside it (``from timing import timed``; a script's own folder is on
``sys.path`` when it runs as ``python scripts/NAME.py``).
"""
from __future__ import annotations

import time
from typing import Callable


def timed(fn: Callable[[], object], steps: int, batch: int, warmup: int = 2) -> dict[str, float]:
    """Wall ms per call, images/s and process CPU-ms per image (all threads: unlike wall time it
    hardly moves with what else the machine runs) of ``fn``, one batch of ``batch`` images per
    call, over ``steps`` calls after ``warmup`` (default 2) calls that trace and warm caches.

    Example: ``timed(lambda: model(x), steps=20, batch=len(x))["ms_per_batch"]``.
    """
    for _ in range(warmup):
        fn()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"ms_per_batch": 1000.0 * wall / steps, "images_per_second": steps * batch / wall,
            "cpu_ms_per_image": 1000.0 * cpu / (steps * batch)}
