"""Start-up, as a user meets it: ``import caffe_port`` and ``from caffe_port import Net`` in fresh
interpreters, and the wall time of ``caffe-port saliency IMAGE`` from process start to its PNG,
warm (Numba cache filled) and cold (an empty Numba cache: every kernel compiles)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from caffe_port.bench.stats import summarize
from caffe_port.bench.threads import thread_environment

# the package's data directory: caffe_port/data, next to this package
SAMPLE_IMAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "chelsea.jpg")


def timed_process(command, env, out_dir=None):
    """Wall seconds from just before the process starts to its exit, and to the last PNG written
    in ``out_dir`` (its modification time; the CLI writes each file once, by rename)."""
    start_wall, start = time.time(), time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    exit_s = time.perf_counter() - start
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or "").splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit status {proc.returncode}")
    png_s = None
    if out_dir is not None:
        stamps = [os.stat(os.path.join(out_dir, f)).st_mtime for f in os.listdir(out_dir) if f.endswith(".png")]
        if not stamps:
            raise RuntimeError("the command wrote no PNG")
        png_s = max(stamps) - start_wall
    return exit_s, png_s, proc.stdout


def cli_command():
    """How to start ``caffe-port``: the script beside this interpreter, else on PATH, else ``-m``."""
    script = os.path.join(os.path.dirname(sys.executable), "caffe-port")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    found = shutil.which("caffe-port")
    return [found] if found else [sys.executable, "-m", "caffe_port.cli"]


IMPORT_CODE = ("import time; t = time.perf_counter(); import caffe_port; a = time.perf_counter() - t; "
               "t = time.perf_counter(); from caffe_port import Net; b = time.perf_counter() - t; "
               "print(a, b)")


def measure_startup(threads, repeats, image=SAMPLE_IMAGE, log=None) -> dict:
    """``import caffe_port`` (and ``from caffe_port import Net``) in fresh interpreters; the wall
    time of ``caffe-port saliency IMAGE`` warm (Numba cache filled by an untimed first run) and cold
    (NUMBA_CACHE_DIR pointing at an empty directory: every kernel compiles)."""
    env = thread_environment(threads)
    result = {"threads": threads, "image": os.path.basename(image)}
    imports, nets = [], []
    for _ in range(repeats):
        _, _, out = timed_process([sys.executable, "-c", IMPORT_CODE], env)
        a, b = (float(v) for v in out.split())
        imports.append(1e3 * a)
        nets.append(1e3 * b)
    result["import_caffe_port_ms"] = summarize(imports)
    result["import_net_ms"] = summarize(nets)
    command = cli_command() + ["saliency", image, "--force", "--threads", str(threads), "--out"]
    result["saliency_command"] = " ".join(["caffe-port", "saliency", os.path.basename(image),
                                           "--threads", str(threads), "--out", "DIR", "--force"])
    with tempfile.TemporaryDirectory(prefix="caffe_port-bench-") as tmp:
        out_dir = os.path.join(tmp, "out")
        os.makedirs(out_dir)
        if log:
            log("caffe-port saliency: one untimed run to fill the Numba cache")
        timed_process(command + [out_dir], env, out_dir)
        warm_exit, warm_png = [], []
        for _ in range(repeats):
            for f in os.listdir(out_dir):
                os.remove(os.path.join(out_dir, f))
            exit_s, png_s, _ = timed_process(command + [out_dir], env, out_dir)
            warm_exit.append(exit_s)
            warm_png.append(png_s)
        result["saliency_warm_png_s"] = summarize(warm_png)
        result["saliency_warm_exit_s"] = summarize(warm_exit)
        if log:
            log("caffe-port saliency: cold, with an empty Numba cache")
        cache = os.path.join(tmp, "numba-cache")
        os.makedirs(cache)
        for f in os.listdir(out_dir):
            os.remove(os.path.join(out_dir, f))
        cold_env = dict(env, NUMBA_CACHE_DIR=cache)
        exit_s, png_s, _ = timed_process(command + [out_dir], cold_env, out_dir)
        result["saliency_cold_png_s"] = png_s
        result["saliency_cold_exit_s"] = exit_s
    return result
