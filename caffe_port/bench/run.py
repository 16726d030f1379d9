"""The whole ``caffe-port bench`` run: sgemm, every (model, batch, device) configuration and its
PyTorch peer, each in a worker process of its own (``caffe_port.bench.workers``), then the ratios
between sides timed under the same load, and the start-up times. The result is one JSON-ready dict
(``SCHEMA``); ``caffe_port.bench.report`` prints it, ``caffe_port.bench.plot`` draws it.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import tempfile

from caffe_port.bench.measure import SGEMM_SIZE, TOP_K, check_model_name
from caffe_port.bench.startup import measure_startup
from caffe_port.bench.stats import ratio
from caffe_port.bench.threads import default_threads
from caffe_port.bench.workers import run_worker
from caffe_port.errors import InputError

DEFAULT_MODELS = ("caffenet", "vgg16", "googlenet", "efficientnet-lite0")
DEFAULT_BATCHES = (1, 8)
DEFAULT_REPEATS = 5
SCHEMA = "caffe_port.bench/1"
# torch is no dependency of caffe_port (only of its test extra): what a user installs for the peer
TORCH_INSTALL_HINT = "pip install torch"


def torch_available() -> bool:
    """Whether torch can be imported, found without importing it (that takes seconds)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):    # refused by an import hook, or a half-initialised module
        return False


def torch_peer_skipped(wanted):
    """Why the PyTorch peer will not run, in words, or None when it will."""
    if not wanted:
        return "--no-torch was given"
    if not torch_available():
        return f"torch is not installed; {TORCH_INSTALL_HINT} to time PyTorch beside caffe_port"
    return None


def _machine(threads):
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cores": os.cpu_count(), "threads": threads, "cpu": platform.processor() or None}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version
    versions = {}
    for module, dists in (("numpy", ["numpy"]), ("numba", ["numba"]), ("onnx", ["onnx"]),
                          ("onnxruntime", ["onnxruntime-gpu", "onnxruntime"]), ("torch", ["torch"])):
        versions[module] = None
        for dist in dists:
            try:
                versions[module] = version(dist)
                break
            except PackageNotFoundError:
                continue
    info["versions"] = versions
    return info


def devices_for(choice):
    """"auto" → CPU, and CUDA when ``caffe_port.runtime.cuda_available()``; or just the one named."""
    if choice not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, not {choice!r}")
    from caffe_port.runtime import cuda_available
    if choice == "cuda" and not cuda_available():
        raise InputError("--device cuda: ONNX Runtime sees no CUDA device on this machine")
    if choice == "auto":
        return ["cpu", "cuda"] if cuda_available() else ["cpu"]
    return [choice]


def run_benchmark(models=DEFAULT_MODELS, batches=DEFAULT_BATCHES, device="auto", threads=None,
                  repeats=DEFAULT_REPEATS, torch=True, startup=True, sgemm_size=SGEMM_SIZE,
                  builder_options=None, log=None, notebook=True) -> dict:
    """Every configuration in its own subprocess, plus sgemm and (``startup``) the start-up times;
    with the PyTorch peer and ``notebook``, each CPU configuration also in one process that used
    torch first (``measure.measure_notebook``), as the row's "notebook".

    Returns the JSON-ready result: {"schema", "machine", "sgemm", "configs": [...], "startup",
    "torch_peer_skipped"}; a configuration that fails carries {"error": its message} instead of
    numbers; "torch_peer_skipped" says why no configuration has a PyTorch peer (None when they do).
    """
    threads = int(threads or default_threads())
    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    if repeats < 1:
        raise InputError(f"--repeats must be at least 1, got {repeats}")
    models = [check_model_name(m) for m in models]
    batches = [int(b) for b in batches]
    if not batches or min(batches) < 1:
        raise InputError(f"batch sizes must be at least 1, got {batches}")
    devices = devices_for(device)
    log = log or (lambda text: None)
    peer_skipped = torch_peer_skipped(torch)
    if peer_skipped:
        log(f"PyTorch peer skipped: {peer_skipped}")
    result = {"schema": SCHEMA, "machine": _machine(threads), "repeats": repeats,
              "load_average_start": list(os.getloadavg()), "configs": [], "torch_peer_skipped": peer_skipped}
    log(f"sgemm {sgemm_size}² float32, {threads} thread(s)")
    result["sgemm"] = run_worker("sgemm", {"threads": threads, "size": sgemm_size,
                                           "repeats": max(repeats, 3)}, threads)
    for model in models:
        for batch in batches:
            for dev in devices:
                log(f"{os.path.basename(model)} batch {batch} {dev} ({threads} thread(s), "
                    f"load average {os.getloadavg()[0]:.2f})")
                load_start = list(os.getloadavg())
                with tempfile.TemporaryDirectory(prefix="caffe_port-bench-") as tmp:
                    peer_inputs = os.path.join(tmp, "peer.npz") if not peer_skipped else None
                    spec = {"model": model, "batch": batch, "device": dev, "threads": threads,
                            "repeats": repeats, "sgemm_size": sgemm_size, "peer_inputs": peer_inputs,
                            "builder_options": dict(builder_options or {})}
                    row = run_worker("config", spec, threads)
                    row.update({"model": model, "batch": batch, "device": row.get("device", dev)})
                    row["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
                    if "error" in row:
                        log(f"  failed: {row['error']}")
                    elif peer_inputs and os.path.exists(peer_inputs):
                        log(f"  PyTorch peer, in its own process (load average {os.getloadavg()[0]:.2f})")
                        row["torch"] = run_worker("torch", spec, threads)
                        if notebook and dev == "cpu":
                            log(f"  notebook: torch first, then caffe_port, in one process "
                                f"(load average {os.getloadavg()[0]:.2f})")
                            row["notebook"] = run_worker("notebook", spec, threads)
                            row["notebook"]["load_average"] = list(os.getloadavg())
                result["configs"].append(row)
    add_ratios(result)
    if startup:
        log("start-up: import caffe_port, caffe-port saliency (warm and cold)")
        load_start = list(os.getloadavg())
        try:
            result["startup"] = measure_startup(threads, repeats, log=log)
        except RuntimeError as e:
            result["startup"] = {"error": str(e)}
        result["startup"]["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
    result["load_average_end"] = list(os.getloadavg())
    return result


def add_ratios(result):
    """caffe_port / PyTorch on the row's own device (a GPU row against PyTorch CUDA),
    top-5 one pass / five passes, conv GFLOP/s / sgemm GFLOP/s; in the notebook process, ours /
    PyTorch's, ours / ours in the separate process, and PyTorch after the Net / before it."""
    whole_run = (result.get("sgemm") or {}).get("gflops", {}).get("median")
    for row in result["configs"]:
        if "error" in row:
            continue
        peer = (row.get("torch") or {}).get("forward_grad_ms")
        conv = row["flops"].get("conv_gflops")
        # the sgemm measured in this configuration's own rounds, under the same load
        sgemm = (row.get("sgemm") or {}).get("gflops", {}).get("median") or whole_run
        row["ratios"] = {
            "vs_torch": ratio(row["ms"]["forward_backward"], peer),
            "top5": ratio(row["ms"]["top5_one_pass"], row["ms"]["top5_five_passes"]),
            "conv_of_sgemm": conv / sgemm if conv and sgemm else None,
            "backward_of_sgemm": row["flops"]["backward_gflops"] / sgemm if sgemm else None,
            "peak_over_kept": row["memory"].get("peak_over_kept"),
        }
        # top-5 in one pass can at best share the forward: its floor is forward + K backwards
        t = row["ms"]
        floor = t["net_forward"]["median"] + row.get("k", TOP_K) * t["backward"]["median"]
        row["ratios"]["top5_floor_ms"] = floor
        row["ratios"]["top5_of_floor"] = ratio(t["top5_one_pass"], {"median": floor})
        # the arithmetic limit: the forward's FLOPs and the input diff's (about as many) at sgemm speed
        gflop = row["flops"].get("backward_gflop")
        limit = 2e3 * gflop / sgemm if gflop and sgemm else None
        row["ratios"]["limit_ms"] = limit
        row["ratios"]["vs_limit"] = ratio(t["forward_backward"], {"median": limit})
        book = row.get("notebook") or {}
        if "ms" in book:
            row["ratios"]["notebook_vs_torch"] = ratio(book["ms"]["forward_backward"],
                                                       book["ms"]["torch_forward_grad"])
            row["ratios"]["notebook_vs_separate"] = ratio(book["ms"]["forward_backward"],
                                                          row["ms"]["forward_backward"])
            row["ratios"]["torch_after_net_vs_before"] = ratio(book["ms"]["torch_forward_grad"],
                                                               book["ms"]["torch_before_net"])
