"""The measurements of ``caffe-port bench``, each run inside a worker process of its own
(``caffe_port.bench.workers``): one (model, batch, device) configuration, the PyTorch peer on the
same image, and sgemm.

No peer publishes these timings, so every ratio here is between two things timed on the same
machine, in the same run, with the same thread count: caffe_port against PyTorch autograd on the
same ONNX graph and weights (``caffe_port.bench.torch_peer.TorchNet``), one stacked backward of the
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
5. peer      when torch is importable: PyTorch's forward + input gradient of the same one-hot on
             the same graph and weights (``TorchNet``, ``torch.set_num_threads(T)``; on CUDA for a
             GPU row, timed to ``torch.cuda.synchronize()``),
             R runs after a warm-up, in a subprocess of its own right after the configuration's —
             PyTorch's OpenMP workers spin between parallel regions (its fastest default), and
             beside caffe_port's Numba workers on the same cores they slowed our backward 8×, so
             each side runs with its own best threading. Its gradient is checked against ours.

6. notebook  (CPU rows, when torch is importable) the same image and one-hot in one process that
             imported torch and ran it first, then caffe_port — a PyTorch user's notebook, with
             torch's OpenMP workers started and spinning as torch chooses: R rounds of PyTorch's
             forward + input gradient alone before any Net exists ("torch before Net"), then a Net
             and R rounds interleaving our forward + backward with PyTorch's. Ratios: ours against
             PyTorch's in the same process, and PyTorch after the Net against before it

FLOPs are counted from the graph (``caffe_port.bench.flops``): the input diffs of Conv, Gemm and
MatMul layers as 2·MACs of the transposed ops, no weight gradients.

Threads: ``T`` (default: the cores this process may use) goes to ONNX Runtime's intra-op pool,
``numba.set_num_threads``, ``torch.set_num_threads``, and BLAS through OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS … set in the subprocess's environment before import
and ``threadpoolctl`` inside it (OPENBLAS_THREAD_TIMEOUT=4 too, for the sgemm it times
between the other measurements; not in the notebook configuration, which keeps every default).

This module imports only the standard library at load time; numpy, ONNX Runtime and torch load
inside the functions that use them.
"""
from __future__ import annotations

import os
import time

from caffe_port.bench.flops import backward_flops, element_count, profile_backward
from caffe_port.bench.memory import peak_mb, release_memory, reset_peak, status_mb
from caffe_port.bench.stats import summarize
from caffe_port.bench.threads import limit_threads
from caffe_port.errors import InputError

TOP_K = 5
SGEMM_SIZE = 2048


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


def model_source(name, **builder_options):
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
    blas = limit_threads(threads)
    import numpy as np

    from caffe_port.methods.base import find_input_blob, find_score_blob
    from caffe_port.net import Net

    clock = time.perf_counter
    row = {"model": spec["model"], "batch": batch, "device": spec["device"], "threads": threads,
           "repeats": repeats, "blas_threads": blas}
    rss_start = status_mb("VmRSS")
    t0 = clock()
    model = model_source(spec["model"], **spec.get("builder_options", {}))
    t1 = clock()
    net = Net(model, device=spec["device"], threads=threads)
    t2 = clock()
    del model
    release_memory()
    row["build_s"], row["load_s"] = t1 - t0, t2 - t1
    row["device"] = net.device
    row["rss_net_mb"] = status_mb("VmRSS")
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
    num_classes = element_count(score_shape[1:])
    k = min(TOP_K, num_classes)
    net.backward(**{score_blob: _one_hots(_top_classes(out[net.outputs[0]], 1), score_shape)[0]})
    t2 = clock()
    row["first_run_ms"] = {"forward": 1e3 * (t1 - t0), "backward": 1e3 * (t2 - t1), "total": 1e3 * (t2 - t0)}

    # 3. memory of one forward + backward at the batch, above the loaded (and warmed) net
    shape = (batch,) + tuple(one_shape[1:])
    x = rng.standard_normal(shape, dtype=np.float32)
    net.blobs[data_name].reshape(*shape)         # drops the warm-up pass's blobs and diffs
    del out
    release_memory()
    loaded = status_mb("VmRSS")
    reset = reset_peak()
    out = net.forward(**{data_name: x})
    forward_peak, after_forward = peak_mb(reset), status_mb("VmRSS")
    score_shape = tuple(net.blobs[score_blob].shape)
    diffs = _one_hots(_top_classes(out[net.outputs[0]], k), score_shape)
    del out
    reset = reset and reset_peak()
    net.backward(**{score_blob: diffs[0]})
    backward_peak = peak_mb(reset)
    # a second pass: the first pass's blobs stay alive until the new forward returns
    reset = reset and reset_peak()
    net.forward(**{data_name: x})
    net.backward(**{score_blob: diffs[0]})
    second_peak = peak_mb(reset)
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
            # a copy: the data blob's diff memory is rewritten by the next backward
            passes.append(net.backward(**{score_blob: diffs[j]})[data_name].copy())
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
    import numpy as np
    import torch

    from caffe_port.bench.torch_peer import TorchNet
    torch.set_num_threads(threads)
    # a GPU row's peer runs on CUDA: the image in, the gradient back, as ours does (and timed to
    # the end of the device's work)
    device = "cuda" if str(spec.get("device", "cpu")).startswith("cuda") else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} sees no CUDA device: install a CUDA build of torch")
    inputs = np.load(spec["peer_inputs"])
    data_name, score_blob = str(inputs["data_name"]), str(inputs["score_blob"])
    finish = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    net = TorchNet(model_source(spec["model"], **spec.get("builder_options", {})), device=device)
    samples, grad = [], None
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        net.forward(**{data_name: inputs["x"]})
        grad = net.backward(**{score_blob: inputs["diff"]})[data_name]
        finish()
        if r:
            samples.append(1e3 * (time.perf_counter() - t0))
    ours = inputs["grad"]
    return {"forward_grad_ms": summarize(samples), "threads": torch.get_num_threads(), "device": device,
            "version": torch.__version__, "omp_wait_policy": spec.get("omp_wait_policy", "default"),
            "rel_l2_vs_caffe_port": float(np.linalg.norm(grad - ours)) / (float(np.linalg.norm(grad)) or 1.0)}


def measure_notebook(spec) -> dict:
    """Step 6 of the module docstring: torch imported (by the worker's first line) and used before
    caffe_port in one process; our forward+backward and PyTorch's forward+input gradient of the
    configuration's image and one-hot, interleaved, after PyTorch alone."""
    threads, repeats = int(spec["threads"]), int(spec["repeats"])
    clock = time.perf_counter
    import numpy as np
    import torch
    import threadpoolctl

    from caffe_port.bench.torch_peer import TorchNet
    torch.set_num_threads(threads)
    inputs = np.load(spec["peer_inputs"])
    data_name, score_blob = str(inputs["data_name"]), str(inputs["score_blob"])
    x, diff = inputs["x"], inputs["diff"]
    peer = TorchNet(model_source(spec["model"], **spec.get("builder_options", {})))

    def torch_pass():
        t0 = clock()
        peer.forward(**{data_name: x})
        return peer.backward(**{score_blob: diff})[data_name], clock() - t0

    before = [torch_pass()[1] for _ in range(repeats + 1)][1:]
    import numba

    from caffe_port.net import Net
    t0 = clock()
    net = Net(model_source(spec["model"], **spec.get("builder_options", {})), device="cpu", threads=threads)
    load_s = clock() - t0

    def our_pass():
        t0 = clock()
        net.forward(**{data_name: x})
        return net.backward(**{score_blob: diff})[data_name], clock() - t0

    ours, theirs, first = [], [], None
    for r in range(repeats + 1):
        grad, seconds = our_pass()
        peer_grad, peer_seconds = torch_pass()
        if r:
            ours.append(seconds)
            theirs.append(peer_seconds)
        else:                       # the first pass compiles or loads the kernels: apart, and checked
            first = seconds
            rel = float(np.linalg.norm(grad - peer_grad)) / (float(np.linalg.norm(peer_grad)) or 1.0)
    ms = lambda values: summarize([1e3 * v for v in values])  # noqa: E731
    pools = [{"api": p.get("internal_api"), "library": os.path.basename(p.get("filepath", "")),
              "threads": p.get("num_threads")} for p in threadpoolctl.threadpool_info()]
    return {"ms": {"forward_backward": ms(ours), "torch_forward_grad": ms(theirs),
                   "torch_before_net": ms(before)},
            "first_run_ms": 1e3 * first, "load_s": load_s, "threads": threads,
            "torch_threads": torch.get_num_threads(), "threading_layer": numba.threading_layer(),
            "pools": pools, "rel_l2_vs_torch": rel}


def measure_sgemm(spec) -> dict:
    """numpy float32 matmul of two n×n matrices: 2·n³ FLOPs a run, R runs after one warm-up."""
    threads, n, repeats = int(spec["threads"]), int(spec["size"]), int(spec["repeats"])
    blas = limit_threads(threads)
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
