"""Compile every CUDA kernel, with the argument types the tests launch it with, to PTX — the check
the simulator cannot make (it runs kernels as Python, so a kernel that Numba's CUDA target cannot
type or lower still passes there). Needs no GPU, only numba-cuda with NVVM
(``pip install 'numba-cuda[cu13]'``), in the interpreter that runs the second step:

    python tests/kernels/cuda/ptx_check.py record /tmp/launches.pkl    # the CUDA tests, simulated
    python tests/kernels/cuda/ptx_check.py compile /tmp/launches.pkl   # each launch → PTX, sm_80

Not a test (no GPU stack is installed for the suite); run by hand after changing a kernel. The
record step runs the simulated tests itself (it sets NUMBA_ENABLE_CUDASIM=1 before numba loads).
"""
import importlib
import os
import pickle
import sys


def record(path):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numba
    import pytest
    from numba.cuda.simulator import kernel as simulated
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    launches = set()
    launch = simulated.FakeCUDAKernel.__call__

    def typed(value):
        return numba.typeof(value._ary if isinstance(value, FakeCUDAArray) else value)

    def recording(self, *args):
        if not self._device:
            fn = self.fn
            # the tiled matmul is built per (tile, element type): keep the type to rebuild it
            closure = tuple(str(c.cell_contents) for c in fn.__closure__ or ()
                            if not isinstance(c.cell_contents, int))
            launches.add((fn.__module__, fn.__qualname__, closure, tuple(typed(a) for a in args)))
        return launch(self, *args)

    simulated.FakeCUDAKernel.__call__ = recording
    status = pytest.main(["-q", "-p", "no:cacheprovider", "tests/kernels/cuda", "tests/caffe_port/test_gpu_path.py"])
    with open(path, "wb") as f:
        pickle.dump(launches, f)
    print(f"{len(launches)} kernel signatures recorded")
    return int(status)


def compile_all(path, cc=(8, 0)):
    from numba import cuda, float32, float64

    with open(path, "rb") as f:
        launches = pickle.load(f)
    failed = []
    for module_name, qualname, closure, argtypes in sorted(launches, key=str):
        module = importlib.import_module(module_name)
        if "<locals>" in qualname:        # blas._tiled_kernel's closure, at the GPU tile size
            element = {"float32": float32, "float64": float64}[closure[0]]
            function = module._tiled_kernel(16, element).py_func
        else:
            function = getattr(module, qualname).py_func
        try:
            cuda.compile_ptx(function, argtypes, cc=cc)
        except Exception as e:
            failed.append(f"{module_name}.{qualname}{argtypes}: {str(e).strip().splitlines()[0]}")
    print(f"{len(launches) - len(failed)} of {len(launches)} kernel signatures compile to PTX for sm_{cc[0]}{cc[1]}")
    for line in failed:
        print("FAILED", line)
    return 1 if failed else 0


if __name__ == "__main__":
    step, target = sys.argv[1], sys.argv[2]
    sys.exit(record(target) if step == "record" else compile_all(target))
