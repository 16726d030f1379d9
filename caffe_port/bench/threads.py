"""One thread count for every pool a measurement uses: ONNX Runtime's intra-op pool, Numba,
PyTorch, and BLAS through the environment of the worker process (set before numpy loads)."""
from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_environment(threads, base=None) -> dict:
    """``base`` (default: os.environ) with every BLAS/OpenMP/Numba thread variable set to ``threads``."""
    env = dict(os.environ if base is None else base)
    for name in THREAD_VARIABLES:
        env[name] = str(int(threads))
    return env


def limit_threads(threads):
    """Inside a worker: threadpoolctl (if installed) and Numba; returns how BLAS was limited."""
    how = "environment"
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(threads)
        how = "threadpoolctl"
    except ImportError:
        pass
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return how
