"""Check a saved ``caffe-port bench --json`` result against the performance goals set for the project.

The benchmark itself reports measurements and ratios only; the goals (the limits below) belong to
the project's planning, not to the product, so they are checked here, on a saved run:

    caffe-port bench --json > run.json
    python tools/bench_targets.py run.json

Prints one line per goal and measured CPU configuration: met, NOT met, or not measured (the run
had no such configuration, or that ratio is missing, e.g. without the PyTorch peer). Exit status:
0 when no measured goal is missed, 1 when one is, 2 when the file cannot be read.
"""
import argparse
import os
import sys

# (key, what, models, batches, metric, comparison, limit): evaluated on the CPU rows measured;
# models/batches None: every one; metric "saliency_warm_s" reads the start-up measurements
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
COMPARE = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b}


def evaluate_targets(result) -> list:
    """Each target against the CPU rows measured: [{key, what, where, value, op, limit, met}], met
    None where nothing was measured."""
    rows = []
    for key, what, models, batches, metric, op, limit in TARGETS:
        if metric == "saliency_warm_s":
            startup = result.get("startup") or {}
            value = (startup.get("saliency_warm_png_s") or {}).get("median")
            rows.append({"key": key, "what": what, "where": "startup", "value": value, "op": op,
                         "limit": limit, "met": None if value is None else COMPARE[op](value, limit)})
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
                         "met": None if value is None else COMPARE[op](value, limit)})
            matched += 1
        if not matched:
            rows.append({"key": key, "what": what, "where": "no such configuration in this run",
                         "value": None, "op": op, "limit": limit, "met": None})
    return rows


def format_targets(rows) -> str:
    lines = []
    for t in rows:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        value = "–" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"{verdict:<12} {t['what']}: {value} {t['op']} {t['limit']} ({t['where']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_targets", description=__doc__.split("\n\n")[0])
    parser.add_argument("result", metavar="JSON", help="a result saved with caffe-port bench --json")
    args = parser.parse_args(argv)
    # imported here, once __main__ has put the checkout on the path
    from caffe_port.bench.report import load_result
    from caffe_port.errors import CaffePortError
    try:
        result = load_result(args.result)
    except CaffePortError as e:
        print(f"bench_targets: error: {e}", file=sys.stderr)
        return 2
    rows = evaluate_targets(result)
    print(format_targets(rows))
    return 1 if any(t["met"] is False for t in rows) else 0


if __name__ == "__main__":
    # run from a checkout without installing: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
