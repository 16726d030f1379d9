"""Device memory for the CUDA backward: allocation, transfers, accumulation, strided copies and
sums, and the wrapping of other libraries' device buffers (ONNX Runtime OrtValues, CuPy arrays).

Every device tensor here is a Numba CUDA device array, C-contiguous unless a function says
otherwise. Only the part of the device-array API that a real GPU and Numba's simulator share is
used (shape, dtype, size, reshape of contiguous arrays, basic slicing, copy_to_host,
copy_to_device): no numpy methods and no arithmetic on device arrays outside kernels, because
the simulator's arrays would accept them and a GPU's would not (tests/kernels/cuda/conftest.py
takes those extras away from the simulator's arrays).

Kernels loop grid-stride (``for i in range(cuda.grid(1), n, cuda.gridsize(1))``), so one launch
shape serves any size; ``launch(n)`` picks it. The simulator runs every thread as a Python
thread, so there the grid is kept to two blocks of 32.

Copies and sums over broadcast or permuted views go through one description, a *layout*: an
element offset, a shape and element strides (any sign, 0 for a broadcast axis) into a flat
array, padded to ``RANK`` axes with unit extents so that each kernel compiles once.
"""
from __future__ import annotations

import numpy as np
from numba import cuda
from numba.core import config

SIMULATED = bool(config.ENABLE_CUDASIM)
THREADS = 32 if SIMULATED else 256
MAX_BLOCKS = 2 if SIMULATED else 4096
RANK = 8            # axes of a layout: the K axis and up to 7 tensor axes

kernel = cuda.jit(cache=not SIMULATED)


def launch(n):
    """(blocks, threads) for a grid-stride kernel over ``n`` work items."""
    return max(1, min(MAX_BLOCKS, -(-int(n) // THREADS))), THREADS


def available() -> bool:
    """Numba sees a CUDA device (or its simulator)."""
    try:
        return bool(cuda.is_available())
    except Exception:   # a broken driver installation reads as no device
        return False


def select(index: int):
    """Make device ``index`` current for Numba (the simulator has only device 0)."""
    if not SIMULATED:
        cuda.select_device(int(index))


# --- allocation and transfers -------------------------------------------------------------------

def is_device_array(x) -> bool:
    return bool(getattr(x, "__cuda_ndarray__", False))


def empty(shape, dtype=np.float32):
    return cuda.device_array(tuple(int(s) for s in shape), dtype=np.dtype(dtype))


def zeros(shape, dtype=np.float32):
    out = empty(shape, dtype)
    fill(out, 0)
    return out


def upload(host, dtype=None):
    """A device copy of a host array (C-contiguous, cast to ``dtype`` if given)."""
    shape = np.shape(host)
    host = np.ascontiguousarray(host, dtype=dtype).reshape(shape)    # ascontiguousarray makes 0-d 1-d
    return cuda.to_device(host)


def shares_memory(a, b) -> bool:
    """Whether two device arrays may overlap: the byte ranges they span intersect (conservative
    for strided views, which are taken to span their whole allocation)."""
    if SIMULATED:      # the simulator's device arrays wrap numpy arrays, its only record of memory
        return bool(np.may_share_memory(a._ary, b._ary))
    (lo_a, hi_a), (lo_b, hi_b) = _extent(a), _extent(b)
    return lo_a < hi_b and lo_b < hi_a


def _extent(x):
    if not x.is_c_contiguous():
        return 0, 1 << 64
    start = int(x.__cuda_array_interface__["data"][0])
    return start, start + int(x.nbytes)


def to_host(x):
    """A numpy copy of a device array; host arrays pass through."""
    return x.copy_to_host() if is_device_array(x) else np.asarray(x)


def flat(x):
    """The 1-D view of a contiguous device array."""
    return x.reshape(x.size)


@kernel
def _fill(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


def fill(x, value):
    out = flat(x)
    if out.size:
        _fill[launch(out.size)](out, x.dtype.type(value))


def as_device(x, dtype=None):
    """A Numba device array for ``x``: a device array itself, a CuPy (or any
    ``__cuda_array_interface__``) array or a CUDA OrtValue wrapped in place, a host array copied."""
    if is_device_array(x):
        if dtype is not None and x.dtype != np.dtype(dtype):
            return cast(x, dtype)
        return x
    if hasattr(x, "__cuda_array_interface__") and not SIMULATED:
        return as_device(cuda.as_cuda_array(x), dtype)
    if _is_ortvalue(x):
        return as_device(from_ortvalue(x), dtype)
    return upload(x, dtype)


# --- ONNX Runtime buffers -------------------------------------------------------------------------

ORT_TYPESTR = {"tensor(float)": "<f4", "tensor(double)": "<f8", "tensor(float16)": "<f2",
               "tensor(int64)": "<i8", "tensor(int32)": "<i4", "tensor(int8)": "|i1",
               "tensor(uint8)": "|u1", "tensor(bool)": "|b1"}


def _is_ortvalue(x):
    return type(x).__name__ == "OrtValue" and hasattr(x, "data_ptr") and hasattr(x, "device_name")


def ortvalue_interface(value):
    """The ``__cuda_array_interface__`` (version 3) describing an OrtValue's buffer in place:
    ONNX Runtime's tensors are dense and C-ordered, so no strides are given."""
    typestr = ORT_TYPESTR.get(value.data_type())
    if typestr is None:
        raise TypeError(f"no device array for an OrtValue of type {value.data_type()}")
    shape = tuple(int(s) for s in value.shape())
    return {"shape": shape, "typestr": typestr, "data": (int(value.data_ptr()), False),
            "strides": None, "version": 3}


def from_ortvalue(value):
    """An OrtValue's tensor as a Numba device array: the same GPU memory when it lives on a CUDA
    device (the array keeps the OrtValue alive), a device copy when it lives on the host."""
    if value.device_name().lower() == "cpu":
        return upload(value.numpy())
    if SIMULATED:   # pragma: no cover - a CUDA OrtValue needs a GPU, which the simulator is not
        raise RuntimeError("a CUDA OrtValue cannot be read under the CUDA simulator")
    return cuda.from_cuda_array_interface(ortvalue_interface(value), owner=value, sync=False)


# --- graph constants, copied once ------------------------------------------------------------------

_resident: dict = {}    # (id(host), dtype or key) -> (host array kept alive, device copy)


def resident(host, dtype=None):
    """The device copy of a constant host array (a weight), made on first use and kept: the
    backward reads the same weights on every call. ``forget`` drops it after net surgery."""
    host_arr = np.asarray(host)
    dtype = np.dtype(dtype or host_arr.dtype)
    key = (id(host), dtype.str)
    entry = _resident.get(key)
    if entry is None or entry[0] is not host:
        # a 0-d constant (a scalar operand) is kept as one element: kernels read arrays
        entry = (host, upload(host_arr.reshape(host_arr.shape or (1,)), dtype))
        _resident[key] = entry
    return entry[1]


def operand(x, dtype):
    """A kernel's operand on the device in ``dtype``: device arrays as they are (cast if needed),
    host arrays — the graph's constants, in the kernel contract — through ``resident``."""
    if is_device_array(x):
        return x if x.dtype == np.dtype(dtype) else cast(x, dtype)
    return resident(x, dtype)


def derived(sources, tag, make):
    """A device array computed on the host from constant ``sources`` (``make()`` returns a host
    array), kept like ``resident`` and dropped when ``forget`` names any of the sources."""
    key = (tuple(id(s) for s in sources), tag)
    entry = _resident.get(key)
    if entry is None or any(a is not b for a, b in zip(entry[0], sources)):
        entry = (tuple(sources), upload(make()))
        _resident[key] = entry
    return entry[1]


def forget(hosts=None):
    """Drop the device copies of ``hosts`` (all copies when None), e.g. after net surgery."""
    if hosts is None:
        _resident.clear()
        return
    ids = {id(h) for h in hosts}
    for key in list(_resident):
        owners = key[0] if isinstance(key[0], tuple) else (key[0],)
        if ids.intersection(owners):
            del _resident[key]


# --- elementwise ------------------------------------------------------------------------------------

@kernel
def _add(a, b, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = a[i] + b[i]


@kernel
def _accumulate(acc, d):
    for i in range(cuda.grid(1), acc.size, cuda.gridsize(1)):
        acc[i] += d[i]


@kernel
def _scale(src, factor, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[i] * factor


@kernel
def _cast(src, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[i]


def add(a, b):
    """A new array a + b (same shape)."""
    _check_same(a, b)
    out = empty(a.shape, a.dtype)
    if out.size:
        _add[launch(out.size)](flat(a), flat(b), flat(out))
    return out


def accumulate(acc, d):
    """acc += d in place (same shape); acc must be memory no one else holds."""
    _check_same(acc, d)
    if acc.size:
        _accumulate[launch(acc.size)](flat(acc), flat(d))
    return acc


def scaled(x, factor):
    """A new array x · factor (factor in x's dtype)."""
    out = empty(x.shape, x.dtype)
    if out.size:
        _scale[launch(out.size)](flat(x), x.dtype.type(factor), flat(out))
    return out


def cast(x, dtype):
    out = empty(x.shape, dtype)
    if out.size:
        _cast[launch(out.size)](flat(x), flat(out))
    return out


def copy(x):
    out = empty(x.shape, x.dtype)
    if out.size:
        out.copy_to_device(x)
    return out


def _check_same(a, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"device arrays of shapes {tuple(a.shape)} and {tuple(b.shape)} do not match")


# --- layouts: strided views of flat arrays ------------------------------------------------------------

def contiguous_strides(shape):
    strides, step = [], 1
    for n in reversed(tuple(shape)):
        strides.append(step)
        step *= int(n)
    return tuple(reversed(strides))


def layout(shape, strides=None, offset=0):
    """(offset, shape, strides) padded to RANK axes; strides default to C order of ``shape``."""
    shape = tuple(int(s) for s in shape)
    strides = contiguous_strides(shape) if strides is None else tuple(int(s) for s in strides)
    if len(shape) > RANK:
        raise ValueError(f"a tensor of rank {len(shape)} (the K axis included): the CUDA kernels "
                         f"handle at most {RANK}")
    lead = RANK - len(shape)
    return int(offset), (1,) * lead + shape, (0,) * lead + strides


def broadcast_strides(shape, full_shape):
    """Strides that read a C-ordered array of ``shape`` as ``full_shape`` (numpy broadcasting):
    0 along prepended and stretched axes."""
    shape, full_shape = tuple(shape), tuple(full_shape)
    lead = len(full_shape) - len(shape)
    own = contiguous_strides(shape)
    return (0,) * lead + tuple(0 if n == 1 and f != 1 else s
                               for n, f, s in zip(shape, full_shape[lead:], own))


@kernel
def _strided_copy(src, src_offset, src_strides, dst, dst_offset, dst_strides, shape, count,
                  divisor, add_into):
    """dst[layout] (+)= src[layout] / divisor, element by element over ``shape``."""
    for i in range(cuda.grid(1), count, cuda.gridsize(1)):
        rest = i
        s = src_offset
        d = dst_offset
        for ax in range(RANK - 1, -1, -1):
            n = shape[ax]
            index = rest % n
            rest //= n
            s += index * src_strides[ax]
            d += index * dst_strides[ax]
        if add_into:
            dst[d] += src[s] / divisor
        else:
            dst[d] = src[s] / divisor


def copy_layout(src, src_layout, dst, dst_layout, divisor=1, add_into=False):
    """Copy (or add) the elements of a strided view of ``src`` into one of ``dst`` (both any
    contiguous device arrays, read flat); the two layouts have the same shape."""
    s_off, shape, s_strides = src_layout
    d_off, d_shape, d_strides = dst_layout
    if shape != d_shape:
        raise ValueError(f"layouts of shapes {shape} and {d_shape} do not match")
    count = int(np.prod(shape, dtype=np.int64))
    if count:
        _strided_copy[launch(count)](flat(src), s_off, s_strides, flat(dst), d_off, d_strides, shape,
                                     count, dst.dtype.type(divisor), bool(add_into))


@kernel
def _sum_layout(src, src_offset, keep_shape, keep_strides, keep_count, sum_shape, sum_strides,
                sum_count, zero, divisor, dst):
    """dst[o] = Σ over the summed axes of src / divisor, one thread per kept element o; the sum
    runs in row-major order over the summed axes (numpy's order for a single stretched axis)."""
    for o in range(cuda.grid(1), keep_count, cuda.gridsize(1)):
        rest = o
        base = src_offset
        for ax in range(RANK - 1, -1, -1):
            n = keep_shape[ax]
            base += (rest % n) * keep_strides[ax]
            rest //= n
        acc = zero
        for r in range(sum_count):
            rest = r
            s = base
            for ax in range(RANK - 1, -1, -1):
                n = sum_shape[ax]
                s += (rest % n) * sum_strides[ax]
                rest //= n
            acc += src[s]
        dst[o] = acc / divisor


def sum_axes(src, axes, divisor=1):
    """Sum a contiguous device array over ``axes`` (dropped), divided by ``divisor``: a new array."""
    shape = tuple(src.shape)
    axes = sorted({a % len(shape) for a in axes})
    strides = contiguous_strides(shape)
    kept = [i for i in range(len(shape)) if i not in axes]
    keep_shape = tuple(shape[i] for i in kept)
    out = empty(keep_shape, src.dtype)
    if not out.size:
        return out
    _, ks, kst = layout(keep_shape, [strides[i] for i in kept])
    _, ss, sst = layout([shape[i] for i in axes], [strides[i] for i in axes])
    sum_count = int(np.prod([shape[i] for i in axes], dtype=np.int64))
    _sum_layout[launch(out.size)](flat(src), 0, ks, kst, out.size, ss, sst, sum_count,
                                  src.dtype.type(0), src.dtype.type(divisor), flat(out))
    return out


def reduce_to(diff, shape, copy_if_same=False):
    """(K, *top_shape) → (K, *shape): sum over the axes numpy broadcasting stretched an operand of
    ``shape`` along. Returns ``diff`` reshaped (the same memory) when nothing is summed, unless
    ``copy_if_same``."""
    shape = tuple(shape)
    k, top = diff.shape[0], tuple(diff.shape[1:])
    lead = len(top) - len(shape)
    stretched = tuple(range(1, 1 + lead)) + tuple(
        1 + lead + i for i, s in enumerate(shape) if s == 1 and top[lead + i] != 1)
    if not stretched:
        out = diff.reshape((k,) + shape)
        return copy(out) if copy_if_same else out
    return sum_axes(diff, stretched).reshape((k,) + shape)


def broadcast_to(src, src_shape, full_shape, divisor=1):
    """A new contiguous array of ``full_shape`` holding ``src`` (C-ordered, of ``src_shape``)
    broadcast numpy-style, divided by ``divisor``."""
    out = empty(full_shape, src.dtype)
    copy_layout(src, layout(full_shape, broadcast_strides(src_shape, full_shape)),
                out, layout(full_shape), divisor)
    return out
