"""``caffe-port bench``: what the backward pass costs, against peers measured in the same run.

No peer publishes these timings, so every ratio here is between two things timed on the same
machine, in the same run, with the same thread count: caffe_port against PyTorch autograd on the
same ONNX graph and weights (``caffe_port.torch_reference.TorchNet``), one stacked backward of the
top-5 classes against five separate passes, the backward's arithmetic rate against numpy's float32
matmul. Each (model, batch, device) runs in a fresh subprocess, so its memory high-water mark is
its own, its thread settings are made before numpy, Numba or ONNX Runtime load, and no
configuration inherits another's warm caches.

Per configuration, in this order (inside its subprocess):

1. load      build the model and ``Net(model, device, threads=T)``
2. first run forward + backward of one image (batch 1): the Numba kernels compile (or load from
             their on-disk cache) and ONNX Runtime creates its session; reported apart ("first")
3. memory    the input is reshaped to the batch (Caffe's reshape drops every blob of step 2), the
             freed memory goes back to the OS (``malloc_trim``), RSS is read ("loaded"); then the
             high-water mark is reset (``/proc/self/clear_refs``) before one forward and again
             before one backward, and read after each. "peak" is the higher of the two minus
             "loaded"; "kept" is the bytes of the blobs ``Net`` fetches for the backward
             (``graph.kept_tensors()``, inputs excluded). One more forward + backward gives the
             "2nd pass" peak: what a process that goes on to the next image needs
4. rounds    one warm-up round, then R rounds, each of which runs, in turn: a plain ONNX Runtime
             forward (a session fetching only the outputs); five separate forward + backward
             passes (the top-1 … top-5 classes of each image; ``Net.forward`` and ``Net.backward``
             timed apart: 5·R samples; the round of five is one "five passes" sample); the top-5
             in one pass (one forward, one backward of a stacked (5, N, classes) diff); a profiled
             backward (``caffe_port.walker.walk`` with an observer that reads the clock after each
             layer: per-layer ms, hence the conv layers' GFLOP/s); and one numpy float32 matmul of
             two n×n matrices (sgemm, 2·n³ FLOPs). Interleaving puts every ratio's two sides under
             the same machine load. The warm-up round also checks that the stacked top-5 equals the
             five passes, and saves the image, the one-hot and our gradient for the peer
5. peer      when torch is importable (CPU rows): PyTorch's forward + input gradient of the same
             one-hot on the same graph and weights (``TorchNet``, ``torch.set_num_threads(T)``),
             R runs after a warm-up, in a subprocess of its own right after the configuration's —
             PyTorch's OpenMP workers spin between parallel regions (its fastest default), and
             beside caffe_port's Numba workers on the same cores they slowed our backward 8×, so
             each side runs with its own best threading. Its gradient is checked against ours.

FLOPs are counted from the graph (``backward_flops``): the input diffs of Conv, Gemm and MatMul
layers as 2·MACs of the transposed ops, no weight gradients:

    Conv   2 · |top| · (C/G) · kh · kw        (each top element scatters into (C/G)·kh·kw bottoms)
    Gemm   2 · M · N · P  per differentiable operand, op(A) (M, P), op(B) (P, N)
    MatMul 2 · |top| · P  per differentiable operand, A (…, M, P), B (…, P, N)

Threads: ``T`` (default: the cores this process may use) goes to ONNX Runtime's intra-op pool,
``numba.set_num_threads``, ``torch.set_num_threads``, and BLAS through OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS … set in the subprocess's environment before import
(and ``threadpoolctl`` when installed).

This module imports only the standard library at load time; numpy, ONNX Runtime, torch and
matplotlib load inside the functions that use them.
"""
from __future__ import annotations

import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from caffe_port.errors import InputError

DEFAULT_MODELS = ("caffenet", "vgg16", "googlenet", "efficientnet-lite0")
DEFAULT_BATCHES = (1, 8)
DEFAULT_REPEATS = 5
TOP_K = 5
SGEMM_SIZE = 2048
SCHEMA = "caffe_port.bench/1"
SAMPLE_IMAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "chelsea.jpg")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")
FLOP_OPS = ("Conv", "Gemm", "MatMul")

# The targets: (key, what, models, batches, metric, comparison, limit). Evaluated on the
# CPU rows that were measured; the saliency target on the startup measurements.
TARGETS = (
    ("vs_torch", "CPU batch 1 forward+backward / PyTorch forward+input grad", ("caffenet", "vgg16"),
     (1,), "vs_torch", "<=", 1.0),
    ("conv_of_sgemm", "backward GFLOP/s of the conv layers / sgemm GFLOP/s", ("vgg16",), None,
     "conv_of_sgemm", ">=", 0.5),
    ("top5", "top-5 in one pass / five separate passes", ("vgg16", "caffenet"), None, "top5", "<=", 0.7),
    ("saliency_warm", "warm `caffe-port saliency` wall time, s", None, None, "saliency_warm_s", "<", 2.0),
    ("memory", "peak above the loaded model / kept activations", ("vgg16",), (8,), "peak_over_kept",
     "<=", 1.5),
)


# --- statistics ---------------------------------------------------------------------------------

def summarize(samples) -> dict:
    """Median, min, max and the quartiles (linear interpolation, as numpy's default) of samples."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples to summarize")

    def quantile(q):
        pos = q * (len(values) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    return {"median": quantile(0.5), "min": values[0], "max": values[-1], "q1": quantile(0.25),
            "q3": quantile(0.75), "n": len(values), "samples": [float(v) for v in samples]}


def ratio(numerator, denominator):
    """median(numerator) / median(denominator) of two summaries (None when either is missing)."""
    if not numerator or not denominator or not denominator["median"]:
        return None
    return numerator["median"] / denominator["median"]


# --- FLOPs --------------------------------------------------------------------------------------

def backward_flops(graph, shapes, start_blob, k=1) -> list:
    """The layers a diff injected at ``start_blob`` reaches, walking back as ``walker.walk`` does,
    with the FLOPs of their input diffs: ``[(layer, op_type, flops), …]`` in backward order, one row
    per reached Conv, Gemm or MatMul layer; ``k`` stacked diffs multiply every count.

    graph: a ``caffe_port.graph.Graph``; shapes: blob name → shape (``graph.shapes(...)``).
    """
    from caffe_port.errors import ShapeError

    reached = {start_blob}
    rows = []
    for node in reversed(graph.nodes):
        if not any(o in reached for o in node.outputs if o) or not graph.needs_backward(node):
            continue
        propagate_down = graph.propagate_down[node.name]
        reached.update(i for i, down in zip(node.inputs, propagate_down) if down and i)
        if node.op_type not in FLOP_OPS:
            continue

        def shape(name):
            value = graph.constants[name].shape if name in graph.constants else shapes.get(name)
            if value is None:
                raise ShapeError(f"cannot count the FLOPs of layer {node.name!r}: the shape of blob "
                                 f"{name!r} is unknown")
            return tuple(int(d) for d in value)

        top = _count(shape(node.outputs[0]))
        if node.op_type == "Conv":
            per_top = _count(shape(node.inputs[1])[1:])          # (C/G) · kh · kw
            flops = 2 * top * per_top if propagate_down[0] else 0
        else:
            a = shape(node.inputs[0])
            if node.op_type == "Gemm":
                inner = a[0] if graph.node_attrs(node).get("transA", 0) else a[1]
            else:
                inner = a[-1]
            flops = 2 * top * inner * sum(1 for down in propagate_down[:2] if down)
        rows.append((node.name, node.op_type, k * flops))
    return rows


def _count(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


# --- the per-layer profile ----------------------------------------------------------------------

def profile_backward(net, score_blob, top_diff, input_blob):
    """One backward from ``score_blob`` after ``net.forward``, walked by ``caffe_port.walker.walk``
    as ``Net.backward`` walks it, with the clock read after each layer.

    top_diff: (N, …) or stacked (K, N, …). Returns ``(rows, input_diff)``: rows
    ``[(layer, op_type, seconds), …]`` in backward order (a layer's time runs from the previous
    layer's end to its own, so it includes the walker's bookkeeping in between), and the input
    blob's diff, (K, N, C, H, W).
    """
    import numpy as np

    from caffe_port.walker import walk

    graph = net.graph
    shape = tuple(net.blobs[score_blob].shape)
    top_diff = np.asarray(top_diff, dtype=np.float32)
    if top_diff.shape == shape:
        top_diff = top_diff[None]
    start = graph.producer[score_blob].index
    nodes = graph.nodes[:start + 1]
    wanted = set(graph.kept_tensors()) | set(net.inputs)
    data = {name: net.blobs[name].data for name in wanted if name in net.blobs}
    shapes = graph.shapes({name: net.blobs[name].data.shape for name in net.inputs})
    shapes.update({name: tuple(value.shape) for name, value in data.items()})
    rows = []
    clock = [time.perf_counter()]

    def observe(node, top_diff, bottom_diff):
        now = time.perf_counter()
        rows.append((node.name, node.op_type, now - clock[0]))
        clock[0] = now

    clock[0] = time.perf_counter()
    result = walk(graph, nodes, net.backend, data, {score_blob: np.ascontiguousarray(top_diff)}, shapes,
                  keep={input_blob}, observer=observe, in_place=True)   # observe reads no diffs
    return rows, result.get(input_blob)


# --- memory (Linux: /proc; elsewhere ru_maxrss, not resettable) -------------------------------------

def _status_mb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak():
    """Reset the kernel's resident high-water mark of this process (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb(reset):
    if reset:
        value = _status_mb("VmHWM")
        if value is not None:
            return value
    import resource
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / (1024 * 1024)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _release_memory():
    """Collect garbage and hand freed heap pages back to the OS, so RSS counts only live memory."""
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --- threads ----------------------------------------------------------------------------------------

def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_environment(threads, base=None) -> dict:
    """``base`` (default: os.environ) with every BLAS/OpenMP/Numba thread variable set to ``threads``."""
    env = dict(os.environ if base is None else base)
    for name in THREAD_VARIABLES:
        env[name] = str(int(threads))
    return env


def _limit_threads(threads):
    """Inside a worker: threadpoolctl (if installed) and Numba; returns how BLAS was limited."""
    how = "environment"
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(threads)
        how = "threadpoolctl"
    except ImportError:
        pass
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return how


# --- models ------------------------------------------------------------------------------------------

def _builders():
    from caffe_port.models import builders
    return builders.BUILDERS


def check_model_name(name):
    """A builder name (``caffe_port.models.builders``), the embedded model's name, or an .onnx file."""
    from caffe_port.onnx_import import EMBEDDED
    if name in _builders() or name in EMBEDDED:
        return name
    if name.lower().endswith(".onnx") and os.path.isfile(name):
        return os.path.abspath(name)
    raise InputError(f"unknown model {name!r}: choose from {', '.join(sorted(_builders()))}, "
                     f"{', '.join(EMBEDDED)}, or give an .onnx file")


def _model_source(name, **builder_options):
    """What Net and TorchNet load: a fresh ModelProto from a builder, else the name or path."""
    builders = _builders()
    if name in builders:
        return builders[name](**builder_options)
    from caffe_port.onnx_import import load_model
    return load_model(name)


# --- one configuration, inside its subprocess ----------------------------------------------------

def _one_hots(classes, shape):
    """(N, K) class indices → (K, *shape) one-hots at the score blob of shape (N, …)."""
    import numpy as np
    n, k = classes.shape
    diffs = np.zeros((k,) + tuple(shape), dtype=np.float32)
    flat = diffs.reshape(k, n, -1)
    for j in range(k):
        flat[j, np.arange(n), classes[:, j]] = 1
    return diffs


def _top_classes(output, k):
    import numpy as np
    scores = np.asarray(output).reshape(output.shape[0], -1)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def measure_config(spec) -> dict:
    """Measure one (model, batch, device) configuration in this process; see the module docstring.

    spec: {"model", "batch", "device", "threads", "repeats", "torch": bool, "builder_options": {}}
    """
    threads, repeats, batch = int(spec["threads"]), int(spec["repeats"]), int(spec["batch"])
    blas = _limit_threads(threads)
    import numpy as np

    from caffe_port.methods.base import find_input_blob, find_score_blob
    from caffe_port.net import Net

    clock = time.perf_counter
    row = {"model": spec["model"], "batch": batch, "device": spec["device"], "threads": threads,
           "repeats": repeats, "blas_threads": blas}
    rss_start = _status_mb("VmRSS")
    t0 = clock()
    model = _model_source(spec["model"], **spec.get("builder_options", {}))
    t1 = clock()
    net = Net(model, device=spec["device"], threads=threads)
    t2 = clock()
    del model
    _release_memory()
    row["build_s"], row["load_s"] = t1 - t0, t2 - t1
    row["device"] = net.device
    row["rss_net_mb"] = _status_mb("VmRSS")
    row["rss_start_mb"] = rss_start
    data_name, score_blob = find_input_blob(net), find_score_blob(net)
    row["input_blob"], row["score_blob"] = data_name, score_blob
    one_shape = net.graph.input_shape(data_name, batch=1)
    if None in one_shape:
        raise InputError(f"model {spec['model']}: input {data_name!r} has symbolic dimensions "
                         f"{one_shape}; the benchmark needs a fixed image size")
    rng = np.random.default_rng(0)

    # 2. first run: Numba kernels compile or load from cache, ONNX Runtime builds its session
    x1 = rng.standard_normal(one_shape, dtype=np.float32)
    t0 = clock()
    out = net.forward(**{data_name: x1})
    t1 = clock()
    score_shape = tuple(net.blobs[score_blob].shape)
    num_classes = _count(score_shape[1:])
    k = min(TOP_K, num_classes)
    net.backward(**{score_blob: _one_hots(_top_classes(out[net.outputs[0]], 1), score_shape)[0]})
    t2 = clock()
    row["first_run_ms"] = {"forward": 1e3 * (t1 - t0), "backward": 1e3 * (t2 - t1), "total": 1e3 * (t2 - t0)}

    # 3. memory of one forward + backward at the batch, above the loaded (and warmed) net
    shape = (batch,) + tuple(one_shape[1:])
    x = rng.standard_normal(shape, dtype=np.float32)
    net.blobs[data_name].reshape(*shape)         # drops the warm-up pass's blobs and diffs
    del out
    _release_memory()
    loaded = _status_mb("VmRSS")
    reset = _reset_peak()
    out = net.forward(**{data_name: x})
    forward_peak, after_forward = _peak_mb(reset), _status_mb("VmRSS")
    score_shape = tuple(net.blobs[score_blob].shape)
    diffs = _one_hots(_top_classes(out[net.outputs[0]], k), score_shape)
    del out
    reset = reset and _reset_peak()
    net.backward(**{score_blob: diffs[0]})
    backward_peak = _peak_mb(reset)
    # a second pass: the first pass's blobs stay alive until the new forward returns
    reset = reset and _reset_peak()
    net.forward(**{data_name: x})
    net.backward(**{score_blob: diffs[0]})
    second_peak = _peak_mb(reset)
    inputs = set(net.inputs)
    kept = sorted(n for n in net.graph.kept_tensors() if n not in inputs and n in net.blobs)
    kept_mb = sum(int(net.blobs[n].data.nbytes) for n in kept) / 2 ** 20
    above = None if loaded is None else max(forward_peak, backward_peak) - loaded
    row["memory"] = {
        "loaded_mb": loaded, "peak_mb": max(forward_peak, backward_peak), "peak_above_loaded_mb": above,
        "forward_peak_above_loaded_mb": None if loaded is None else forward_peak - loaded,
        "after_forward_above_loaded_mb": None if loaded is None else after_forward - loaded,
        "backward_peak_above_loaded_mb": None if loaded is None else backward_peak - loaded,
        "second_pass_peak_above_loaded_mb": None if loaded is None else second_peak - loaded,
        "kept_mb": kept_mb, "kept_blobs": len(kept),
        "peak_over_kept": above / kept_mb if above is not None and kept_mb else None,
        "method": "VmHWM after clear_refs" if reset else "ru_maxrss (not reset)"}

    # 4.–6. every measurement once to warm up, then R rounds that interleave them all, so that
    # the ratios compare runs made under the same load
    feeds = {data_name: x}
    shapes = net.graph.shapes({data_name: shape})
    flop_rows = backward_flops(net.graph, shapes, score_blob)
    flops = {name: f for name, _, f in flop_rows}
    n = int(spec.get("sgemm_size", SGEMM_SIZE))
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty((n, n), dtype=np.float32)
    ort, forward, backward, five, one_pass, walks, sgemm = [], [], [], [], [], [], []
    for r in range(repeats + 1):
        t0 = clock()
        np.matmul(a, b, out=c)
        sgemm.append(2.0 * n ** 3 / (clock() - t0) / 1e9)
        t0 = clock()
        net.runtime.run(feeds, net.outputs)
        t1 = clock()
        ort.append(t1 - t0)
        passes = []
        round_start = clock()
        for j in range(k):              # five separate passes: top-1 … top-5 of each image
            t0 = clock()
            net.forward(**feeds)
            t1 = clock()
            passes.append(net.backward(**{score_blob: diffs[j]})[data_name])
            t2 = clock()
            forward.append(t1 - t0)
            backward.append(t2 - t1)
        five.append(clock() - round_start)
        t0 = clock()
        net.forward(**feeds)
        stacked = net.backward(**{score_blob: diffs})[data_name]
        one_pass.append(clock() - t0)
        walks.append(profile_backward(net, score_blob, diffs[0], data_name)[0])
        if r == 0:                      # the warm-up round: checks, not timings
            scale = max(float(np.abs(p).max()) for p in passes) or 1.0
            row["top5_max_rel_diff"] = max(float(np.abs(stacked[j] - passes[j]).max())
                                           for j in range(k)) / scale
            if spec.get("peer_inputs"):  # what the PyTorch worker runs and checks its gradient against
                np.savez(spec["peer_inputs"], x=x, diff=diffs[0], grad=passes[0],
                         data_name=data_name, score_blob=score_blob)
            del ort[:], forward[:], backward[:], five[:], one_pass[:], walks[:], sgemm[:]
    del a, b, c
    row["sgemm"] = {"size": n, "gflops": summarize(sgemm)}
    row["k"] = k
    ms = lambda values: summarize([1e3 * v for v in values])  # noqa: E731
    row["ms"] = {"ort_forward": ms(ort), "net_forward": ms(forward), "backward": ms(backward),
                 "forward_backward": ms([f + b for f, b in zip(forward, backward)]),
                 "top5_one_pass": ms(one_pass), "top5_five_passes": ms(five)}
    row["torch"] = None

    # FLOPs over time: the whole backward's median, and the conv layers' in the profiled walks
    layers = []
    for j, (name, op_type, _) in enumerate(walks[0]):
        seconds = sorted(w[j][2] for w in walks)[len(walks) // 2]
        layers.append({"layer": name, "type": op_type, "ms": 1e3 * seconds, "gflop": flops.get(name, 0) / 1e9})
    total_gflop = sum(flops.values()) / 1e9
    conv_gflop = sum(f for _, t, f in flop_rows if t == "Conv") / 1e9
    conv_ms = sum(r["ms"] for r in layers if r["type"] == "Conv")
    row["flops"] = {"backward_gflop": total_gflop, "conv_gflop": conv_gflop,
                    "backward_gflops": total_gflop / (row["ms"]["backward"]["median"] / 1e3),
                    "conv_ms": conv_ms, "profile_ms": sum(r["ms"] for r in layers),
                    "conv_gflops": conv_gflop / (conv_ms / 1e3) if conv_ms else None}
    row["profile"] = layers
    return row


def measure_torch(spec) -> dict:
    """PyTorch forward + input gradient (``TorchNet``) of the configuration's image and one-hot, in
    a process of its own: PyTorch's OpenMP workers spin between parallel regions by default (its
    fastest setting), and beside caffe_port's Numba workers on the same cores that spinning
    slowed caffe_port's backward 8× — each peer runs here with its own best threading."""
    threads, repeats = int(spec["threads"]), int(spec["repeats"])
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not importable"}
    import numpy as np
    from caffe_port.torch_reference import TorchNet
    torch.set_num_threads(threads)
    inputs = np.load(spec["peer_inputs"])
    data_name, score_blob = str(inputs["data_name"]), str(inputs["score_blob"])
    net = TorchNet(_model_source(spec["model"], **spec.get("builder_options", {})))
    samples, grad = [], None
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        net.forward(**{data_name: inputs["x"]})
        grad = net.backward(**{score_blob: inputs["diff"]})[data_name]
        if r:
            samples.append(1e3 * (time.perf_counter() - t0))
    ours = inputs["grad"]
    return {"forward_grad_ms": summarize(samples), "threads": torch.get_num_threads(),
            "version": torch.__version__, "omp_wait_policy": spec.get("omp_wait_policy", "default"),
            "rel_l2_vs_caffe_port": float(np.linalg.norm(grad - ours)) / (float(np.linalg.norm(grad)) or 1.0)}


def measure_sgemm(spec) -> dict:
    """numpy float32 matmul of two n×n matrices: 2·n³ FLOPs a run, R runs after one warm-up."""
    threads, n, repeats = int(spec["threads"]), int(spec["size"]), int(spec["repeats"])
    blas = _limit_threads(threads)
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    samples = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        if i:
            samples.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return {"size": n, "threads": threads, "blas_threads": blas, "gflops": summarize(samples),
            "numpy": np.__version__}


WORKERS = {"config": measure_config, "torch": measure_torch, "sgemm": measure_sgemm}


def worker_main(argv) -> int:
    """``python -c '…worker_main…' KIND SPEC_JSON RESULT_PATH``: run one measurement, write JSON."""
    kind, spec, path = argv[0], json.loads(argv[1]), argv[2]
    result = WORKERS[kind](spec)
    with open(path, "w") as f:
        json.dump(result, f)
    return 0


WORKER_CODE = "import sys; from caffe_port.bench import worker_main; sys.exit(worker_main(sys.argv[1:]))"


def _run_worker(kind, spec, threads):
    """Run ``kind`` in a fresh interpreter; returns its result, or {"error": its last line}."""
    env = thread_environment(threads)
    code = WORKER_CODE
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


# --- start-up: import time and the saliency command ----------------------------------------------

def _timed_process(command, env, out_dir=None):
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


def _cli_command():
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
        _, _, out = _timed_process([sys.executable, "-c", IMPORT_CODE], env)
        a, b = (float(v) for v in out.split())
        imports.append(1e3 * a)
        nets.append(1e3 * b)
    result["import_caffe_port_ms"] = summarize(imports)
    result["import_net_ms"] = summarize(nets)
    command = _cli_command() + ["saliency", image, "--force", "--threads", str(threads), "--out"]
    result["saliency_command"] = " ".join(["caffe-port", "saliency", os.path.basename(image),
                                           "--threads", str(threads), "--out", "DIR", "--force"])
    with tempfile.TemporaryDirectory(prefix="caffe_port-bench-") as tmp:
        out_dir = os.path.join(tmp, "out")
        os.makedirs(out_dir)
        if log:
            log("caffe-port saliency: one untimed run to fill the Numba cache")
        _timed_process(command + [out_dir], env, out_dir)
        warm_exit, warm_png = [], []
        for _ in range(repeats):
            for f in os.listdir(out_dir):
                os.remove(os.path.join(out_dir, f))
            exit_s, png_s, _ = _timed_process(command + [out_dir], env, out_dir)
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
        exit_s, png_s, _ = _timed_process(command + [out_dir], cold_env, out_dir)
        result["saliency_cold_png_s"] = png_s
        result["saliency_cold_exit_s"] = exit_s
    return result


# --- the whole run -------------------------------------------------------------------------------

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
                  builder_options=None, log=None) -> dict:
    """Every configuration in its own subprocess, plus sgemm and (``startup``) the start-up times.

    Returns the JSON-ready result: {"schema", "machine", "sgemm", "configs": [...], "startup",
    "targets"}; a configuration that fails carries {"error": its message} instead of numbers.
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
    result = {"schema": SCHEMA, "machine": _machine(threads), "repeats": repeats,
              "load_average_start": list(os.getloadavg()), "configs": []}
    log(f"sgemm {sgemm_size}² float32, {threads} thread(s)")
    result["sgemm"] = _run_worker("sgemm", {"threads": threads, "size": sgemm_size,
                                            "repeats": max(repeats, 3)}, threads)
    for model in models:
        for batch in batches:
            for dev in devices:
                log(f"{os.path.basename(model)} batch {batch} {dev} ({threads} thread(s), "
                    f"load average {os.getloadavg()[0]:.2f})")
                load_start = list(os.getloadavg())
                with tempfile.TemporaryDirectory(prefix="caffe_port-bench-") as tmp:
                    peer_inputs = os.path.join(tmp, "peer.npz") if torch and dev == "cpu" else None
                    spec = {"model": model, "batch": batch, "device": dev, "threads": threads,
                            "repeats": repeats, "sgemm_size": sgemm_size, "peer_inputs": peer_inputs,
                            "builder_options": dict(builder_options or {})}
                    row = _run_worker("config", spec, threads)
                    row.update({"model": model, "batch": batch, "device": row.get("device", dev)})
                    row["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
                    if "error" in row:
                        log(f"  failed: {row['error']}")
                    elif peer_inputs and os.path.exists(peer_inputs):
                        log(f"  PyTorch peer, in its own process (load average {os.getloadavg()[0]:.2f})")
                        row["torch"] = _run_worker("torch", spec, threads)
                result["configs"].append(row)
    _add_ratios(result)
    if startup:
        log("start-up: import caffe_port, caffe-port saliency (warm and cold)")
        load_start = list(os.getloadavg())
        try:
            result["startup"] = measure_startup(threads, repeats, log=log)
        except RuntimeError as e:
            result["startup"] = {"error": str(e)}
        result["startup"]["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
    result["load_average_end"] = list(os.getloadavg())
    result["targets"] = evaluate_targets(result)
    return result


def _add_ratios(result):
    """caffe_port / PyTorch (a GPU row against the CPU row's PyTorch of the same model and batch),
    top-5 one pass / five passes, conv GFLOP/s / sgemm GFLOP/s."""
    whole_run = (result.get("sgemm") or {}).get("gflops", {}).get("median")
    peers = {(r["model"], r["batch"]): r["torch"]["forward_grad_ms"] for r in result["configs"]
             if "error" not in r and r.get("torch") and "forward_grad_ms" in r["torch"]}
    for row in result["configs"]:
        if "error" in row:
            continue
        peer = peers.get((row["model"], row["batch"]))
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


def evaluate_targets(result) -> list:
    """Each target of the issue against the CPU rows measured: [{key, what, row, value, limit, met}]."""
    rows = []
    ops = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b}
    for key, what, models, batches, metric, op, limit in TARGETS:
        if metric == "saliency_warm_s":
            startup = result.get("startup") or {}
            value = (startup.get("saliency_warm_png_s") or {}).get("median")
            rows.append({"key": key, "what": what, "where": "startup", "value": value, "op": op,
                         "limit": limit, "met": None if value is None else ops[op](value, limit)})
            continue
        matched = 0
        for row in result["configs"]:
            name = os.path.basename(row["model"])
            if row.get("device") != "cpu" or name not in models or "error" in row:
                continue
            if batches is not None and row["batch"] not in batches:
                continue
            value = row["ratios"].get(metric)
            rows.append({"key": key, "what": what, "where": f"{name} batch {row['batch']} cpu",
                         "value": value, "op": op, "limit": limit,
                         "met": None if value is None else ops[op](value, limit)})
            matched += 1
        if not matched:
            rows.append({"key": key, "what": what, "where": "no such configuration in this run",
                         "value": None, "op": op, "limit": limit, "met": None})
    return rows


# --- output --------------------------------------------------------------------------------------

def _cell(stats, digits=0):
    if not stats:
        return "–"
    fmt = f"{{:.{digits}f}}"
    return f"{fmt.format(stats['median'])} ({fmt.format(stats['min'])}–{fmt.format(stats['max'])})"


def _num(value, fmt="{:.2f}"):
    return "–" if value is None else fmt.format(value)


def _digits(stats):
    return 1 if stats and stats["median"] < 100 else 0


def _table(header, rows, left=3):
    """Columns padded to their widest cell: the first ``left`` flush left, the numbers flush right."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) if i < left else str(v).rjust(w)  # noqa: E731
                               for i, (v, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_tables(result, profile=False) -> str:
    """The terminal report: three tables (time, top-5 and FLOPs, memory), start-up, targets."""
    m = result["machine"]
    sgemm = result.get("sgemm") or {}
    out = [f"caffe_port bench: {m['threads']} thread(s) for ONNX Runtime, Numba, BLAS and PyTorch; "
           f"{m.get('cpu') or 'CPU'} ({m['cores']} cores); median (min–max) of {result['repeats']} "
           f"run(s) after warm-up",
           f"load average (1/5/15 min) at start {_load(result['load_average_start'])}, "
           f"at end {_load(result.get('load_average_end'))}"]
    if "gflops" in sgemm:
        out.append(f"sgemm (numpy float32 {sgemm['size']}×{sgemm['size']} matmul, before the "
                   f"configurations): {_cell(sgemm['gflops'], 1)} GFLOP/s; each configuration's "
                   f"ratio uses the sgemm timed in its own rounds")
    elif sgemm:
        out.append(f"sgemm: failed ({sgemm.get('error')})")
    good = [r for r in result["configs"] if "error" not in r]
    failed = [r for r in result["configs"] if "error" in r]
    head = lambda r: [os.path.basename(r["model"]), str(r["batch"]), r["device"]]  # noqa: E731
    if good:
        rows = []
        for r in good:
            t = r["ms"]
            peer = (r.get("torch") or {}).get("forward_grad_ms")
            rows.append(head(r) + [_load(r["load_average"]["start"][:1]), _cell(t["ort_forward"], _digits(t["ort_forward"])),
                                   _cell(t["net_forward"], _digits(t["net_forward"])),
                                   _cell(t["backward"], _digits(t["backward"])),
                                   _cell(t["forward_backward"], _digits(t["forward_backward"])),
                                   _cell(peer, _digits(peer)), _num(r["ratios"]["vs_torch"]),
                                   f"{r['first_run_ms']['total']:.0f}"])
        out += ["", "Time, ms",
                _table(["model", "batch", "device", "load avg", "ORT forward", "Net forward", "backward",
                        "fwd+bwd", "PyTorch fwd+grad", "ratio", "first run"], rows)]
        rows = []
        for r in good:
            t, f = r["ms"], r["flops"]
            rows.append(head(r) + [_cell(t["top5_one_pass"], _digits(t["top5_one_pass"])),
                                   _cell(t["top5_five_passes"], _digits(t["top5_five_passes"])),
                                   _num(r["ratios"]["top5"]), _num(f["backward_gflop"], "{:.1f}"),
                                   _num(f["backward_gflops"], "{:.1f}"), _num(f["conv_gflops"], "{:.1f}"),
                                   _num((r.get("sgemm") or {}).get("gflops", {}).get("median"), "{:.1f}"),
                                   _num(_pct(r["ratios"]["conv_of_sgemm"]), "{:.0f} %")])
        out += ["", f"Top-{TOP_K} and arithmetic rate",
                _table(["model", "batch", "device", "top-5 one pass", "five passes", "ratio",
                        "bwd GFLOP", "bwd GFLOP/s", "conv GFLOP/s", "sgemm GFLOP/s", "conv/sgemm"], rows)]
        rows = []
        for r in good:
            mem = r["memory"]
            mb = lambda key: _num(mem.get(key), "{:.0f}")  # noqa: E731
            rows.append(head(r) + [mb("loaded_mb"), mb("forward_peak_above_loaded_mb"),
                                   mb("after_forward_above_loaded_mb"), mb("backward_peak_above_loaded_mb"),
                                   mb("peak_above_loaded_mb"), mb("kept_mb"), _num(mem["peak_over_kept"]),
                                   mb("second_pass_peak_above_loaded_mb")])
        out += ["", "Memory, MiB above the loaded net (RSS high-water marks of the first forward, then "
                    "its backward; kept = blobs fetched for the backward; 2nd pass = one more "
                    "forward+backward)",
                _table(["model", "batch", "device", "loaded RSS", "forward peak", "after forward",
                        "backward peak", "peak", "kept", "peak/kept", "2nd pass peak"], rows)]
        if profile:
            for r in good:
                out += ["", f"Backward profile: {os.path.basename(r['model'])} batch {r['batch']} "
                            f"{r['device']} (median of {r['repeats']} walk(s), "
                            f"{r['flops']['profile_ms']:.0f} ms in all)"]
                out.append(format_profile(r["profile"]))
    for r in failed:
        out.append(f"{os.path.basename(r['model'])} batch {r['batch']} {r['device']}: failed: {r['error']}")
    startup = result.get("startup")
    if startup and "error" not in startup:
        out += ["", f"Start-up ({startup['threads']} thread(s); load average at start "
                    f"{_load(startup['load_average']['start'])})",
                f"  import caffe_port               {_cell(startup['import_caffe_port_ms'], 1)} ms",
                f"  from caffe_port import Net      {_cell(startup['import_net_ms'], 0)} ms",
                f"  {startup['saliency_command']}",
                f"    warm, process start to PNG   {_cell(startup['saliency_warm_png_s'], 2)} s "
                f"(to exit {_cell(startup['saliency_warm_exit_s'], 2)} s)",
                f"    cold (empty Numba cache)     {startup['saliency_cold_png_s']:.1f} s "
                f"(to exit {startup['saliency_cold_exit_s']:.1f} s)"]
    elif startup:
        out += ["", f"Start-up: failed: {startup['error']}"]
    if result.get("targets"):
        out += ["", "Targets"]
        for t in result["targets"]:
            verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
            out.append(f"  {verdict:<12} {t['what']}: {_num(t['value'])} {t['op']} {t['limit']} "
                       f"({t['where']})")
    return "\n".join(out)


def format_profile(layers, top=12) -> str:
    """Per op type (ms, share, GFLOP/s) and the ``top`` slowest layers of one backward."""
    total = sum(r["ms"] for r in layers) or 1.0
    kinds = {}
    for r in layers:
        entry = kinds.setdefault(r["type"], [0.0, 0.0, 0])
        entry[0] += r["ms"]
        entry[1] += r["gflop"]
        entry[2] += 1
    rows = [[t, str(n), f"{ms:.1f}", f"{100 * ms / total:.0f} %",
             f"{gflop / (ms / 1e3):.1f}" if gflop and ms else "–"]
            for t, (ms, gflop, n) in sorted(kinds.items(), key=lambda kv: -kv[1][0])]
    text = _table(["op", "layers", "ms", "share", "GFLOP/s"], rows, left=1)
    slow = sorted(layers, key=lambda r: -r["ms"])[:top]
    rows = [[r["layer"], r["type"], f"{r['ms']:.1f}", f"{100 * r['ms'] / total:.0f} %",
             f"{r['gflop'] / (r['ms'] / 1e3):.1f}" if r["gflop"] and r["ms"] else "–"] for r in slow]
    return text + "\n" + _table(["layer", "op", "ms", "share", "GFLOP/s"], rows, left=2)


def _pct(value):
    return None if value is None else 100 * value


def _load(values):
    return "–" if not values else "/".join(f"{v:.2f}" for v in values)


def plot(result, path, dpi=110):
    """A bar chart PNG: per configuration, the times (log scale, min–max whiskers) and the ratios
    against their targets. Raises InputError when matplotlib is missing."""
    Figure, FigureCanvasAgg = _matplotlib()
    import numpy as np

    good = [r for r in result["configs"] if "error" not in r]
    if not good:
        raise InputError("nothing to plot: every configuration failed")
    labels = [f"{os.path.basename(r['model'])}\nbatch {r['batch']} {r['device']}" for r in good]
    series = [("ONNX Runtime forward", lambda r: r["ms"]["ort_forward"]),
              ("caffe_port fwd+bwd", lambda r: r["ms"]["forward_backward"]),
              ("PyTorch fwd+grad", lambda r: (r.get("torch") or {}).get("forward_grad_ms")),
              ("top-5, one pass", lambda r: r["ms"]["top5_one_pass"]),
              ("top-5, five passes", lambda r: r["ms"]["top5_five_passes"])]
    fig = Figure(figsize=(max(8.0, 1.6 * len(good) + 4), 8), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, height_ratios=[2, 1])
    x = np.arange(len(good))
    width = 0.8 / len(series)
    for j, (name, get) in enumerate(series):
        stats = [get(r) for r in good]
        med = np.array([s["median"] if s else np.nan for s in stats])
        lo = np.array([s["median"] - s["min"] if s else 0 for s in stats])
        hi = np.array([s["max"] - s["median"] if s else 0 for s in stats])
        top.bar(x + (j - (len(series) - 1) / 2) * width, med, width, yerr=[lo, hi], label=name, capsize=2)
    top.set_yscale("log")
    top.set_ylabel("ms (median, min–max)")
    top.set_xticks(x, labels)
    top.legend(fontsize="small", ncols=3)
    m = result["machine"]
    top.set_title(f"caffe_port backward, {m['threads']} thread(s), {m.get('cpu') or ''}")
    ratios = [("fwd+bwd / PyTorch", "vs_torch", 1.0), ("top-5 one pass / five", "top5", 0.7),
              ("conv GFLOP/s / sgemm", "conv_of_sgemm", 0.5), ("peak memory / kept", "peak_over_kept", 1.5)]
    width = 0.8 / len(ratios)
    for j, (name, key, target) in enumerate(ratios):
        values = np.array([r["ratios"].get(key) if r["ratios"].get(key) is not None else np.nan for r in good])
        bars = bottom.bar(x + (j - (len(ratios) - 1) / 2) * width, values, width, label=f"{name} (target {target})")
        bottom.axhline(target, color=bars.patches[0].get_facecolor(), linestyle="--", linewidth=1)
    bottom.set_xticks(x, labels)
    bottom.set_ylabel("ratio")
    bottom.legend(fontsize="small", ncols=4)
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    fig.savefig(tmp, dpi=dpi, format="png")
    os.replace(tmp, path)
    return path


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("--plot needs matplotlib; pip install 'caffe_port[plot]'") from None
    return Figure, FigureCanvasAgg


# --- command line (``caffe-port bench`` and tools/bench_backward.py) ----------------------------

def add_arguments(parser):
    """The options of ``caffe-port bench``."""
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), metavar="M,M",
                        help="comma-separated: builder names (caffenet, vgg16, googlenet, alexnet, "
                             "zfnet, lenet …), efficientnet-lite0, or .onnx files "
                             f"(default: {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--batch", default=",".join(str(b) for b in DEFAULT_BATCHES), metavar="B,B",
                        help="comma-separated batch sizes (default: 1,8)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: the CPU, and the GPU too when ONNX Runtime sees one (default)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads for ONNX Runtime, Numba, BLAS and PyTorch (default: all cores)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, metavar="R",
                        help=f"timed runs after warm-up per measurement (default {DEFAULT_REPEATS})")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--no-startup", action="store_true",
                        help="skip the import and `caffe-port saliency` timings")
    parser.add_argument("--sgemm-size", type=int, default=SGEMM_SIZE, metavar="S",
                        help=f"side of the square float32 matmul measured as sgemm (default {SGEMM_SIZE})")
    parser.add_argument("--profile", action="store_true",
                        help="also print each configuration's per-layer backward profile")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--plot", default=None, metavar="PNG", help="write a bar chart of the results")
    parser.add_argument("--load", default=None, metavar="JSON",
                        help="measure nothing: show (and --plot) a result saved with --json")
    return parser


def _split(text, what, convert=str):
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise InputError(f"--{what}: give at least one value")
    try:
        return [convert(t) for t in items]
    except ValueError:
        raise InputError(f"--{what}: cannot read {text!r}") from None


def run_from_args(args, stream=None) -> int:
    """Run (or ``--load``) the benchmark the parsed options ask for; print the table or JSON."""
    stream = stream or sys.stdout
    if args.plot:
        _matplotlib()          # refuse before minutes of measuring, not after
    if args.load:
        try:
            with open(args.load) as f:
                result = json.load(f)
        except (OSError, ValueError) as e:
            raise InputError(f"{args.load}: cannot read a saved benchmark ({e})") from None
        if result.get("schema") != SCHEMA:
            raise InputError(f"{args.load}: not a caffe_port benchmark result (schema {result.get('schema')!r})")
    else:
        if args.threads is not None and args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        result = run_benchmark(models=_split(args.models, "models"), batches=_split(args.batch, "batch", int),
                               device=args.device, threads=args.threads, repeats=args.repeats,
                               torch=not args.no_torch, startup=not args.no_startup,
                               sgemm_size=args.sgemm_size,
                               log=lambda text: print(f"bench: {text}", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(result, indent=1), file=stream)
    else:
        print(format_tables(result, profile=args.profile), file=stream)
    if args.plot:
        plot(result, args.plot)
        print(args.plot, file=sys.stderr if args.json else stream)
    return 0


def main(argv=None) -> int:
    import argparse
    from caffe_port.errors import CaffePortError
    parser = argparse.ArgumentParser(prog="bench_backward", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except CaffePortError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
