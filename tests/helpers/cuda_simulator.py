"""Make Numba's CUDA simulator refuse what a GPU refuses, for the tests.

The simulator's device arrays wrap numpy arrays and pass any unknown attribute to them, so code
calling ``d.sum()``, ``d + 1`` or ``np.asarray(d)`` on a device array works there and fails on a
GPU. ``restrict()`` limits them to the attributes Numba's real DeviceNDArray has and that this
package uses. It changes the simulator's class for the whole process: call it only in a process
that runs under NUMBA_ENABLE_CUDASIM=1 (the CUDA tests' subprocess).

It also mends a race in the simulator itself: ``cuda.shared.array`` looks its block's array up
and creates it when missing without a lock, so two threads of a block can each create one and
one of them then tiles into an array no other thread reads (the tiled matmul gave wrong products
about one run in six under ``sys.setswitchinterval(1e-5)``).
"""
import sys
import threading

import numpy as np
from numba.core import config

# Attributes of numba.cuda.cudadrv.devicearray.DeviceNDArray (the simulator reaches the shape and
# the strides through the same lookup when it moves arrays in and out of kernels).
DEVICE_ARRAY_API = frozenset({
    "shape", "strides", "dtype", "size", "ndim", "nbytes", "flags",
    "copy_to_host", "copy_to_device", "reshape", "ravel", "view", "is_c_contiguous",
    "is_f_contiguous", "split", "bind", "alloc_size", "stream", "squeeze",
})

ARITHMETIC = ("__add__", "__sub__", "__mul__", "__floordiv__", "__truediv__", "__mod__", "__pow__",
              "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__")


def restrict():
    if not config.ENABLE_CUDASIM:
        raise RuntimeError("restrict() is for processes running under NUMBA_ENABLE_CUDASIM=1")
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    if getattr(FakeCUDAArray, "_caffe_port_restricted", False):
        return
    original = FakeCUDAArray.__getattr__

    def getattr_as_on_gpu(self, name):
        if name not in DEVICE_ARRAY_API:
            raise AttributeError(f"a device array on a GPU has no attribute {name!r} "
                                 "(the simulator's would forward it to numpy)")
        return original(self, name)

    def refuse(name):
        def operator(self, other):
            raise TypeError(f"a device array on a GPU has no {name}: use a kernel")
        return operator

    FakeCUDAArray.__getattr__ = getattr_as_on_gpu
    for name in ARITHMETIC:
        setattr(FakeCUDAArray, name, refuse(name))
    FakeCUDAArray.__hash__ = object.__hash__
    FakeCUDAArray._caffe_port_restricted = True
    _lock_shared_arrays()


def _lock_shared_arrays():
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.core import types
    from numba.np import numpy_support

    lock = threading.Lock()
    dynamic = FakeCUDAShared.array

    def array(self, shape, dtype):
        if shape == 0:
            return dynamic(self, shape, dtype)
        caller = sys._getframe(1)       # the kernel line: one shared array per line, as before
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                if isinstance(dtype, types.Type):
                    dtype = numpy_support.as_dtype(dtype)
                found = np.empty(shape, dtype)
                self._allocations[key] = found
        return found

    FakeCUDAShared.array = array
