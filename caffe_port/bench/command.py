"""The options of ``caffe-port bench`` (also ``tools/bench_backward.py``) and what they run: a
measurement, or a result saved with ``--json`` read back (``--load``); then the tables or JSON, and
the chart. Standard library only at load time: ``caffe-port`` builds every parser at start-up."""
from __future__ import annotations

import sys

from caffe_port.bench.measure import SGEMM_SIZE
from caffe_port.bench.plot import plot, require_matplotlib
from caffe_port.bench.report import format_tables, load_result, to_json
from caffe_port.bench.run import DEFAULT_BATCHES, DEFAULT_MODELS, DEFAULT_REPEATS, run_benchmark
from caffe_port.errors import InputError


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
    parser.add_argument("--no-notebook", action="store_true",
                        help="skip the notebook configuration (torch imported and used first, then "
                             "caffe_port, in one process), measured beside the separate processes")
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
    """A comma-separated option's values; InputError naming the option when one cannot be read."""
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
        require_matplotlib()          # refuse before minutes of measuring, not after
    if args.load:
        result = load_result(args.load)
    else:
        if args.threads is not None and args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        result = run_benchmark(models=_split(args.models, "models"), batches=_split(args.batch, "batch", int),
                               device=args.device, threads=args.threads, repeats=args.repeats,
                               torch=not args.no_torch, startup=not args.no_startup,
                               sgemm_size=args.sgemm_size, notebook=not args.no_notebook,
                               log=lambda text: print(f"bench: {text}", file=sys.stderr, flush=True))
    if args.json:
        print(to_json(result), file=stream)
    else:
        print(format_tables(result, profile=args.profile), file=stream)
    if args.plot:
        plot(result, args.plot)
        print(args.plot, file=sys.stderr if args.json else stream)
    return 0
