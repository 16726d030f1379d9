"""The threading layer the parallel kernels run on, prepared so that its idle workers sleep whatever
the process imported first — without changing the process's environment for good, and without
touching another library's thread pool.

Why: ONNX Runtime, Numba and (for the user) PyTorch take turns on the same cores layer after layer,
and a pool still spinning after its last parallel region steals a core from the next layer. On this
project's 2-core AMD EPYC, a Numba worker under GNU OpenMP's default wait policy burnt 4–8 ms of CPU
after each parallel call (0.05 ms under PASSIVE), and CaffeNet's forward+backward took 218 ms of CPU
per pass instead of 112 (batch 1, median of 30; docs/benchmarks.md, "Whatever was imported first").

Numba chooses its threading layer once per process, at its first parallel call, trying tbb, then
omp, then workqueue (``numba.config.THREADING_LAYER_PRIORITY``). ``prepare`` runs before that
(``kernels/jit.py`` calls it when the kernels are imported) and does one of:

* **tbb** — oneTBB (the ``tbb`` wheel, a dependency on x86-64): its idle workers sleep after a short
  spin (0.09 ms of CPU in the 50 ms after a call, measured as above), it never shares a runtime
  with PyTorch's OpenMP, and it is thread- and fork-safe. The wheel installs ``libtbb.so.12`` under
  ``<prefix>/lib``, where the dynamic loader does not look, so Numba alone never finds it (numba
  issues 6108, 9740): the library is loaded here by its path, and Numba's own load by soname then
  finds it already in the process.
* **omp** — GNU libgomp, where tbb cannot be loaded. libgomp reads OMP_WAIT_POLICY once, when it
  is loaded, and PyTorch ships its own libgomp under the same soname: once torch is imported,
  Numba's ``omppool`` binds to torch's copy (the global scope comes first), initialised spinning.
  So ``omppool`` is imported here with RTLD_DEEPBIND (its own libgomp first: a runtime of its own)
  and OMP_WAIT_POLICY=PASSIVE in the environment only for the length of that import (unless the
  user set it). Left: torch imported *after* this reuses that libgomp by soname, PASSIVE.
* nothing, when Numba has already started a layer (the user's own parallel code ran first) or the
  user asked for another layer (``NUMBA_THREADING_LAYER``).
"""
from __future__ import annotations

import ctypes
import os
import sys
from importlib import import_module, metadata

import numba

TBB_LIBRARY = "libtbb.so.12"
TBB_DISTRIBUTION = "tbb"
# settings of NUMBA_THREADING_LAYER under which Numba tries tbb first, and then omp
TRIES_TBB = ("default", "tbb", "safe", "threadsafe", "forksafe")
TRIES_OMP = ("default", "omp", "threadsafe")

_prepared = None


def started_layer():
    """The layer Numba has started in this process ("tbb", "omp", "workqueue"), or None."""
    try:
        return numba.threading_layer()
    except ValueError:          # Numba says: not initialised yet
        return None


def tbb_library():
    """The path of the tbb wheel's ``libtbb.so.12``, or None when the wheel is not installed."""
    try:
        files = metadata.distribution(TBB_DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == TBB_LIBRARY:
            path = str(entry.locate())
            if os.path.exists(path):
                return path
    return None


def prepare() -> str:
    """Make Numba's first parallel call start a layer whose idle workers sleep (once a process).

    Returns what was done: "tbb" (libtbb loaded for Numba to find), "omp" (omppool imported with a
    libgomp of its own, PASSIVE), "started:<layer>" (Numba had started already: nothing to do), or
    "numba" (left to Numba: another layer asked for, or neither route available here)."""
    global _prepared
    if _prepared is None:
        _prepared = _prepare()
    return _prepared


def _prepare():
    layer = started_layer()
    if layer is not None:
        return f"started:{layer}"
    asked = str(numba.config.THREADING_LAYER).lower()
    priority = list(numba.config.THREADING_LAYER_PRIORITY)
    linux = sys.platform.startswith("linux")
    if linux and asked in TRIES_TBB and (asked != "default" or priority[0] == "tbb"):
        path = tbb_library()
        if path is not None:
            try:
                ctypes.CDLL(path)
                import_module("numba.np.ufunc.tbbpool")    # what Numba imports: it links now
                return "tbb"
            except (OSError, ImportError):
                pass
    omp_next = asked != "default" or priority.index("omp") < priority.index("workqueue")
    if linux and asked in TRIES_OMP and omp_next and hasattr(os, "RTLD_DEEPBIND") and load_private_omppool():
        return "omp"
    return "numba"


def load_private_omppool() -> bool:
    """Import Numba's ``omppool`` bound to a libgomp of its own, initialised PASSIVE unless the
    user's environment says otherwise; the environment is as it was afterwards. False when the
    module cannot be imported (Numba then does without omp)."""
    name = "OMP_WAIT_POLICY"
    own = name not in os.environ
    flags = sys.getdlopenflags()
    if own:
        os.environ[name] = "PASSIVE"
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        import_module("numba.np.ufunc.omppool")
        return True
    except ImportError:
        return False
    finally:
        sys.setdlopenflags(flags)
        if own:
            del os.environ[name]
