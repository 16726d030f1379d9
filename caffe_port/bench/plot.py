"""``caffe-port bench --plot``: a bar chart PNG of a result. matplotlib is optional (the ``plot``
extra) and loads only when a chart is drawn; ``require_matplotlib`` refuses early, in one line."""
from __future__ import annotations

import os

from caffe_port.errors import InputError


def require_matplotlib():
    """matplotlib's Figure and Agg canvas; InputError naming the extra when it is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("--plot needs matplotlib; pip install 'caffe_port[plot]'") from None
    return Figure, FigureCanvasAgg


def plot(result, path, dpi=110):
    """A bar chart PNG: per configuration, the times (log scale, min–max whiskers) and the ratios,
    with ratio 1 (the two sides equal) marked. Raises InputError when matplotlib is missing."""
    Figure, FigureCanvasAgg = require_matplotlib()
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
    ratios = [("fwd+bwd / PyTorch", "vs_torch"), ("top-5 one pass / five", "top5"),
              ("conv GFLOP/s / sgemm", "conv_of_sgemm"), ("peak memory / kept", "peak_over_kept")]
    width = 0.8 / len(ratios)
    for j, (name, key) in enumerate(ratios):
        values = np.array([r["ratios"].get(key) if r["ratios"].get(key) is not None else np.nan for r in good])
        bottom.bar(x + (j - (len(ratios) - 1) / 2) * width, values, width, label=name)
    bottom.axhline(1.0, color="black", linestyle="--", linewidth=1)
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
