"""How much memory a new allocation can have, and the check every path makes before allocating.

A request for more than the machine can give does not fail cleanly by itself: numpy raises a
MemoryError with a traceback, native code may abort, and on Linux the kernel may overcommit and
kill the process later. So the readers and the Net estimate what they are about to allocate and
refuse first, with the estimate in the message.

What is available is the least of three limits, each where it applies:

* the machine's: ``MemAvailable`` in /proc/meminfo;
* the container's: the cgroup's memory limit less its usage (cgroup v2 ``memory.max`` /
  ``memory.current``, or v1 ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``);
* the process's: ``ulimit -v`` (RLIMIT_AS) less the address space already mapped.
"""
from __future__ import annotations

import ctypes
import math
import resource

from caffe_port.errors import CaffePortError

CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                 "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


class MemoryLimitError(CaffePortError):
    """An allocation was refused before it was made: it would not fit in the memory available."""


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None     # cgroup v2 writes "max" for no limit


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_available():
    for limit_path, usage_path in CGROUP_FILES:
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 1 << 60:
            return max(limit - usage, 0)
    return None


def _address_space_available():
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * resource.getpagesize()
    except OSError:
        return None
    return max(soft - mapped, 0)


def available_memory():
    """Bytes a new allocation can have (module docstring), or None when nothing says."""
    known = [v for v in (_meminfo_available(), _cgroup_available(), _address_space_available())
             if v is not None]
    return min(known) if known else None


def nbytes(shape, itemsize=4) -> int:
    """Bytes of an array of ``shape``, in Python integers (numpy's product wraps past 2⁶³)."""
    return itemsize * math.prod(int(d) for d in shape)


def gib(n) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(need, what, advice=""):
    """Raise MemoryLimitError when ``need`` bytes for ``what`` exceed the memory available."""
    have = available_memory()
    if have is not None and need > have:
        raise MemoryLimitError(f"{what} needs about {gib(need)} but only {gib(have)} of memory is "
                               f"available{': ' + advice if advice else ''}")


def return_freed_heap():
    """Hand the heap pages that are free back to the OS (glibc's ``malloc_trim``; nothing elsewhere).

    A buffer of many megabytes is mapped fresh by glibc rather than carved from the heap, so the
    heap's freed pages (the forward's transient tensors) would stay resident beside it: VGG16 at
    batch 8 held 94 MB of them under its 200 MB diff buffer. The trim costs 4–13 ms there, against
    a backward of 2 s; it is made only before such a buffer."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):     # not glibc (musl, macOS): nothing to hand back this way
        return
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
