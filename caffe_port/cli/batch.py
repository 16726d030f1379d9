"""``caffe-port batch``: saliency and localisation over a whole image set (caffe_port.batch).

The options are the single-image commands' (options.py), the methods those of the method table;
the work, the output folder and its crash safety are caffe_port.batch's.
"""
from __future__ import annotations

import argparse
import functools
import os

from caffe_port.cli.method_table import METHODS, method_names, recipe_method
from caffe_port.cli.options import (EMBEDDED, Loaded, class_options, method_options, model_options,
                                    output_options, recipe_option, target)
from caffe_port.errors import InputError
from caffe_port.methods.recipes import DEFAULT as DEFAULT_RECIPE
from caffe_port.methods.recipes import recipe

EPILOG = """\
INPUT: image files, folders (walked recursively for image files) or .txt lists with one image
path per line, optionally followed by a ground-truth class index (ILSVRC's val.txt; relative
paths resolve against the list's folder). --class label explains each image's ground truth.

DIR/index.parquet has one row per image x method x class: image, path, method, rank, class,
name, score, prob, label, map (the .npy in the photograph's pixels, relative to DIR), box,
status ('ok' or the image's error), seconds. --localize --recipe R makes the boxes by recipe R's
segmentation from R's map (--method chooses other maps); --no-maps keeps no .npy. Rerunning the same command computes only what is
not done; a run killed at any moment loses nothing it committed. Other settings into the same
DIR are refused; --force discards its earlier results and starts over. Exit status: 0, or 1
when an image failed (its row says why), 2 for an error that stopped the run. docs/scale.md
has the format, its crash safety and Ray clusters.
"""


def method_specs(names, args):
    """MethodSpecs for the named methods: the method table's builder with this command's options."""
    from caffe_port.batch.worker import MethodSpec
    specs = []
    for name in names:
        entry = METHODS[name]
        options = {option: getattr(args, option) for option in entry.options}
        specs.append(MethodSpec(name, functools.partial(entry.build, args=argparse.Namespace(**options)),
                                options))
    return specs


def _absolute(path):
    """Model files as absolute paths: Ray workers do not share the driver's working directory."""
    return os.path.abspath(path) if path is not None and os.path.exists(path) else path


def require_out(args, holds="the maps"):
    if args.out is None:
        raise InputError(f"{args.command} needs --out DIR (the folder for index.parquet and {holds})")


def engine_settings(args, loaded):
    """What every command over a set passes to caffe_port.batch.run from its options."""
    return dict(model=_absolute(args.model or EMBEDDED), weights=_absolute(args.weights), preset=loaded.preset,
                batch_size=args.batch_size, workers=args.workers, engine=args.engine,
                ray_address=args.ray_address, actors=args.actors, device=args.device, threads=args.threads,
                score_blob=args.score_blob, labels=loaded.labels, force=args.force, progress=not args.quiet,
                report=args.report, net=loaded.net if args.engine == "local" else None)


def cmd_batch(args):
    # pyarrow and ONNX Runtime take most of a second to import: the other commands need not wait
    from caffe_port.batch.job import run
    require_out(args)
    if args.top_k is not None and args.target is not None:
        raise InputError("give --class or --top-k, not both")
    if args.recipe is not None and not args.localize:
        raise InputError("--recipe chooses how --localize makes its boxes: add --localize")
    chosen = recipe(args.recipe or DEFAULT_RECIPE)
    names = args.method or [recipe_method(chosen)]
    loaded = Loaded(args)
    settings = engine_settings(args, loaded)
    table = run(args.inputs, args.out, methods=method_specs(names, args), target=target(args),
                top_k=args.top_k, localize=args.localize, recipe=chosen.name, keep_maps=not args.no_maps,
                **settings)
    failed = sum(status != "ok" for status in table.column("status").to_pylist())
    return 1 if failed else 0


def set_options(p):
    """The options of a command over an image set: the engine, --report, --quiet."""
    g = p.add_argument_group("image set")
    g.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per forward (default 16)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="decoding threads beside the net (default: the cores, at most 4)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (this process) or ray (an actor pool; the 'ray' extra)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="join this Ray cluster (HEAD:6379 or 'auto'; default: a local Ray)")
    g.add_argument("--actors", type=int, default=None, metavar="N",
                   help="Ray actors, each with one net (default: the cluster's CPUs / --threads)")
    g.add_argument("--report", action="store_true", help="write DIR/report.html, a static page")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no final line")
    return g


def add_commands(sub):
    p = sub.add_parser("batch", help="maps and boxes for a whole image set, resumable (index.parquet)",
                       description="Maps (and boxes) for every image of folders and lists, "
                                   "batched, into DIR: index.parquet and the .npy maps.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, .txt lists")
    p.add_argument("--method", type=method_names, default=None, metavar="M[,M...]",
                   help=f"one or more of {', '.join(METHODS)}, comma-separated (default saliency, or "
                        f"the --recipe's map)")
    method_options(p)
    model_options(p)
    class_options(p)
    output_options(p, pictures=False)
    g = set_options(p)
    g.add_argument("--localize", action="store_true",
                   help="a box from each (H, W) map, in the photograph's pixels (by default the "
                        "paper's GrabCut, Simonyan et al. §3.1)")
    recipe_option(g, default=None)
    g.add_argument("--no-maps", action="store_true",
                   help="write no .npy maps: the rows (scores, boxes) only")
    p.set_defaults(func=cmd_batch)
