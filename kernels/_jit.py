"""The two Numba decorators every kernel uses.

``cache=True`` writes compiled machine code next to the source (``__pycache__``), so only the
first run of a kernel on a machine pays for compilation; Numba compiles lazily, per dtype, so a
graph compiles only the kernels it uses. ``fastmath`` stays off: reassociating sums would make
float32 results depend on the compiler's choices.
"""
import numba

jit = numba.njit(cache=True, nogil=True)            # serial loops: small or inherently sequential work
pjit = numba.njit(cache=True, nogil=True, parallel=True)  # outer loop is numba.prange over independent rows
prange = numba.prange
