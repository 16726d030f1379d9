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


def quiet_blas_environment(env) -> dict:
    """``env`` with OpenBLAS's idle spin cut to 2⁴ cycles (default 2²⁸, ~0.1 s), for the workers
    that time numpy's sgemm between the other measurements: its threads must not spin into the ONNX
    Runtime forward timed next. The benchmark's own matmul only: caffe_port's backward uses no
    BLAS in float32, and the notebook configuration keeps every default."""
    return dict(env, OPENBLAS_THREAD_TIMEOUT="4")


def limit_threads(threads):
    """Inside a worker: threadpoolctl and Numba; returns how BLAS was limited."""
    import threadpoolctl
    threadpoolctl.threadpool_limits(threads)
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return "threadpoolctl"
