"""What ``caffe-port bench`` prints: the terminal tables of a result (time, the notebook
configuration beside the separate processes, top-5 and arithmetic rate, memory, start-up,
optionally the per-layer profiles), and the result as JSON, saved and
read back (``--json``, ``--load``). Measurements and ratios only: no verdicts."""
from __future__ import annotations

import json
import os

from caffe_port.bench.measure import TOP_K
from caffe_port.bench.run import SCHEMA
from caffe_port.errors import InputError


def to_json(result) -> str:
    return json.dumps(result, indent=1)


def load_result(path) -> dict:
    """A result saved with ``--json``; InputError when it cannot be read or is not one."""
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read a saved benchmark ({e})") from None
    if not isinstance(result, dict) or result.get("schema") != SCHEMA:
        schema = result.get("schema") if isinstance(result, dict) else None
        raise InputError(f"{path}: not a caffe_port benchmark result (schema {schema!r})")
    return result


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
    """The terminal report: three tables (time, top-5 and FLOPs, memory), then start-up."""
    m = result["machine"]
    sgemm = result.get("sgemm") or {}
    out = [f"caffe_port bench: {m['threads']} thread(s) for ONNX Runtime, Numba, BLAS and PyTorch; "
           f"{m.get('cpu') or 'CPU'} ({m['cores']} cores); median (min–max) of {result['repeats']} "
           f"run(s) after warm-up",
           f"load average (1/5/15 min) at start {_load_average(result['load_average_start'])}, "
           f"at end {_load_average(result.get('load_average_end'))}"]
    if "gflops" in sgemm:
        out.append(f"sgemm (numpy float32 {sgemm['size']}×{sgemm['size']} matmul, before the "
                   f"configurations): {_cell(sgemm['gflops'], 1)} GFLOP/s; each configuration's "
                   f"ratio uses the sgemm timed in its own rounds")
    elif sgemm:
        out.append(f"sgemm: failed ({sgemm.get('error')})")
    if result.get("torch_peer_skipped"):
        out.append(f"PyTorch peer skipped: {result['torch_peer_skipped']}")
    good = [r for r in result["configs"] if "error" not in r]
    failed = [r for r in result["configs"] if "error" in r]
    head = lambda r: [os.path.basename(r["model"]), str(r["batch"]), r["device"]]  # noqa: E731
    if good:
        rows = []
        for r in good:
            t = r["ms"]
            peer = (r.get("torch") or {}).get("forward_grad_ms")
            rows.append(head(r) + [_load_average(r["load_average"]["start"][:1]),
                                   _cell(t["ort_forward"], _digits(t["ort_forward"])),
                                   _cell(t["net_forward"], _digits(t["net_forward"])),
                                   _cell(t["backward"], _digits(t["backward"])),
                                   _cell(t["forward_backward"], _digits(t["forward_backward"])),
                                   _cell(peer, _digits(peer)), _num(r["ratios"]["vs_torch"]),
                                   f"{r['first_run_ms']['total']:.0f}"])
        out += ["", "Time, ms",
                _table(["model", "batch", "device", "load avg", "ORT forward", "Net forward", "backward",
                        "fwd+bwd", "PyTorch fwd+grad", "ratio", "first run"], rows)]
        books = [r for r in good if "ms" in (r.get("notebook") or {})]
        if books:
            rows = []
            for r in books:
                t, b, q = r["ms"], r["notebook"]["ms"], r["ratios"]
                peer = (r.get("torch") or {}).get("forward_grad_ms")
                rows.append(head(r) + [_cell(t["forward_backward"], _digits(t["forward_backward"])),
                                       _cell(peer, _digits(peer)), _num(q["vs_torch"]),
                                       _cell(b["forward_backward"], _digits(b["forward_backward"])),
                                       _cell(b["torch_forward_grad"], _digits(b["torch_forward_grad"])),
                                       _num(q.get("notebook_vs_torch")), _num(q.get("notebook_vs_separate")),
                                       _cell(b["torch_before_net"], _digits(b["torch_before_net"])),
                                       _num(q.get("torch_after_net_vs_before")),
                                       r["notebook"].get("threading_layer") or "–"])
            out += ["", "Separate processes, and one notebook process (torch imported and used first, "
                        "then caffe_port; ours and PyTorch's rounds interleaved), ms",
                    _table(["model", "batch", "device", "fwd+bwd", "PyTorch", "ratio", "notebook fwd+bwd",
                            "notebook PyTorch", "ratio", "nb/sep", "PyTorch before Net", "after/before",
                            "Numba layer"], rows)]
        rows = []
        for r in good:
            t, f = r["ms"], r["flops"]
            rows.append(head(r) + [_cell(t["top5_one_pass"], _digits(t["top5_one_pass"])),
                                   _cell(t["top5_five_passes"], _digits(t["top5_five_passes"])),
                                   _num(r["ratios"]["top5"]), _num(r["ratios"].get("top5_floor_ms"), "{:.0f}"),
                                   _num(r["ratios"].get("top5_of_floor")), _num(f["backward_gflop"], "{:.1f}"),
                                   _num(f["backward_gflops"], "{:.1f}"), _num(f["conv_gflops"], "{:.1f}"),
                                   _num((r.get("sgemm") or {}).get("gflops", {}).get("median"), "{:.1f}"),
                                   _num(_pct(r["ratios"]["conv_of_sgemm"]), "{:.0f} %"),
                                   _num(r["ratios"].get("limit_ms"), "{:.1f}"), _num(r["ratios"].get("vs_limit"))])
        out += ["", f"Top-{TOP_K} and arithmetic rate (floor: Net forward + {TOP_K} backwards, the best one "
                    f"pass can do; limit: the forward's and the input diff's FLOPs, twice the backward's, at "
                    f"sgemm speed, ms)",
                _table(["model", "batch", "device", "top-5 one pass", "five passes", "ratio", "floor",
                        "vs floor", "bwd GFLOP", "bwd GFLOP/s", "conv GFLOP/s", "sgemm GFLOP/s", "conv/sgemm",
                        "limit", "vs limit"], rows)]
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
                out += ["", f"Backward profile: {_label(r)} (median of {r['repeats']} walk(s), "
                            f"{r['flops']['profile_ms']:.0f} ms in all)"]
                out.append(format_profile(r["profile"]))
    for r in failed:
        out.append(f"{_label(r)}: failed: {r['error']}")
    for r in good:
        if "error" in (r.get("torch") or {}):
            out.append(f"{_label(r)}: PyTorch peer failed: {r['torch']['error']}")
        if "error" in (r.get("notebook") or {}):
            out.append(f"{_label(r)}: notebook configuration failed: {r['notebook']['error']}")
    startup = result.get("startup")
    if startup and "error" not in startup:
        out += ["", f"Start-up ({startup['threads']} thread(s); load average at start "
                    f"{_load_average(startup['load_average']['start'])})",
                f"  import caffe_port               {_cell(startup['import_caffe_port_ms'], 1)} ms",
                f"  from caffe_port import Net      {_cell(startup['import_net_ms'], 0)} ms",
                f"  {startup['saliency_command']}",
                f"    warm, process start to PNG   {_cell(startup['saliency_warm_png_s'], 2)} s "
                f"(to exit {_cell(startup['saliency_warm_exit_s'], 2)} s)",
                f"    cold (empty Numba cache)     {startup['saliency_cold_png_s']:.1f} s "
                f"(to exit {startup['saliency_cold_exit_s']:.1f} s)"]
    elif startup:
        out += ["", f"Start-up: failed: {startup['error']}"]
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


def _label(row):
    """A configuration as the log and the tables name it: "vgg16 batch 8 cpu"."""
    return f"{os.path.basename(row['model'])} batch {row['batch']} {row['device']}"


def _pct(value):
    return None if value is None else 100 * value


def _load_average(values):
    return "–" if not values else "/".join(f"{v:.2f}" for v in values)
