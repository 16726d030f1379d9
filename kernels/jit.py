"""The two Numba decorators every kernel uses.

``cache=True`` writes compiled machine code next to the source (``__pycache__``), so only the
first run of a kernel on a machine pays for compilation; Numba compiles lazily, per dtype, so a
graph compiles only the kernels it uses. ``fastmath`` stays off: reassociating sums would make
float32 results depend on the compiler's choices.
"""
import sys

import numba
from numba.core import event

from .threading_layer import prepare

# before any kernel's first parallel call: the layer Numba starts then must sleep when idle
prepare()

jit = numba.njit(cache=True, nogil=True)            # serial loops: small or inherently sequential work
pjit = numba.njit(cache=True, nogil=True, parallel=True)  # outer loop is numba.prange over independent rows
prange = numba.prange

_listener = None


def announce_compilation(stream=None):
    """Print one line the first time this process compiles a kernel (a cold Numba cache takes
    seconds; a warm one loads in milliseconds and prints nothing)."""
    global _listener
    if _listener is not None:
        return
    class Notice(event.Listener):
        said = False

        def on_start(self, ev):
            if not self.said:
                self.said = True
                print("caffe_port: compiling backward kernels for this machine "
                      "(first run only; cached for later runs)…", file=stream or sys.stderr, flush=True)

        def on_end(self, ev):
            pass

    _listener = Notice()
    event.register("numba:compile", _listener)
