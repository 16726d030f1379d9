"""A process's resident memory, for the benchmark's memory columns: Linux's /proc (a high-water
mark that can be reset); elsewhere ``ru_maxrss``, which cannot."""
from __future__ import annotations

import gc
import sys


def status_mb(field):
    """A ``/proc/self/status`` field in MiB (``VmRSS``, ``VmHWM``), None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak():
    """Reset the kernel's resident high-water mark of this process (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mb(reset):
    """The resident high-water mark in MiB: since the last ``reset_peak()`` when ``reset`` (it
    succeeded), else since the process started."""
    if reset:
        value = status_mb("VmHWM")
        if value is not None:
            return value
    import resource
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / (1024 * 1024)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def release_memory():
    """Collect garbage and hand freed heap pages back to the OS, so RSS counts only live memory."""
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
