"""The thread count reaches every pool through the worker's environment."""
import os

from caffe_port.bench.threads import THREAD_VARIABLES, default_threads, thread_environment


def test_thread_environment():
    env = thread_environment(3, base={"PATH": "/bin", "OMP_NUM_THREADS": "16"})
    assert env["PATH"] == "/bin"
    assert all(env[name] == "3" for name in THREAD_VARIABLES)
    assert {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"} <= set(env)


def test_default_threads_are_the_cores_this_process_may_use():
    assert 1 <= default_threads() <= (os.cpu_count() or 1)
