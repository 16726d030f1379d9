"""Each measurement of ``caffe-port bench`` in a fresh interpreter: ``run_worker`` (in the
benchmark's process) starts ``python -c WORKER_CODE KIND SPEC RESULT``, whose ``worker_main`` runs
the measurement ``WORKERS[KIND]`` and writes its JSON.

A fresh process per measurement gives each its own memory high-water mark, thread settings made
(in its environment) before numpy, Numba or ONNX Runtime load, and no warm caches from another.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from caffe_port.bench.measure import measure_config, measure_notebook, measure_sgemm, measure_torch
from caffe_port.bench.threads import quiet_blas_environment, thread_environment

WORKERS = {"config": measure_config, "torch": measure_torch, "sgemm": measure_sgemm,
           "notebook": measure_notebook}


def worker_main(argv) -> int:
    """``python -c '…worker_main…' KIND SPEC_JSON RESULT_PATH``: run one measurement, write JSON."""
    kind, spec, path = argv[0], json.loads(argv[1]), argv[2]
    result = WORKERS[kind](spec)
    with open(path, "w") as f:
        json.dump(result, f)
    return 0


WORKER_CODE = "import sys; from caffe_port.bench.workers import worker_main; sys.exit(worker_main(sys.argv[1:]))"


def run_worker(kind, spec, threads):
    """Run ``kind`` in a fresh interpreter; returns its result, or {"error": its last line}."""
    env = thread_environment(threads)
    code = WORKER_CODE
    if kind in ("config", "sgemm"):
        env = quiet_blas_environment(env)
    if kind == "notebook":
        # a PyTorch user's process: torch first, everything at its defaults
        code = "import torch; " + WORKER_CODE
    if kind == "torch":
        # PyTorch's own thread defaults, its fastest: no OMP_WAIT_POLICY, and torch loads before
        # caffe_port's import sets its sleep-when-idle defaults for the libraries not yet loaded
        env.pop("OMP_WAIT_POLICY", None)
        env.pop("OPENBLAS_THREAD_TIMEOUT", None)
        code = "import torch; " + WORKER_CODE
        spec = dict(spec, omp_wait_policy=env.get("OMP_WAIT_POLICY", "default"))
    with tempfile.TemporaryDirectory(prefix="caffe_port-bench-") as tmp:
        path = os.path.join(tmp, "result.json")
        proc = subprocess.run([sys.executable, "-c", code, kind, json.dumps(spec), path],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(path):
            lines = [line for line in (proc.stderr or "").splitlines() if line.strip()]
            return {"error": lines[-1].strip() if lines else f"exit status {proc.returncode}"}
        with open(path) as f:
            return json.load(f)
