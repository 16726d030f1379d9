"""``caffe-port``: the command line. Argument parsing and error reporting only.

The parser is put together here from the command groups, each module adding its own commands:

    maps.py          classify, saliency, classmodel, localize, grid, demo
    batch.py         batch (caffe_port.batch: a whole image set, resumable)
    evaluate.py      evaluate (caffe_port.evaluation: localisation error by the ILSVRC rule)
    measure.py       sanity, metrics (caffe_port.sanity, caffe_port.metrics: measuring maps)
    model_tools.py   info, convert
    teaching.py      gradcheck, trace
    benchmark.py     bench

beside options.py (the options commands share and the net they load), outputs.py (files checked
all before any is written; notes on stderr) and method_table.py (the methods by name). The work
itself is done by the library: ``caffe_port.methods`` makes the maps, ``caffe_port.render`` the
pictures, ``caffe_port.preprocess`` the way between photographs and the net.

Every error caffe_port raises on purpose (a missing image, an unknown class, a corrupt model…)
is caught once, in ``main``, and printed as one line on stderr with exit status 2; so is running
out of memory in an allocation no check foresaw. Anything else is a bug, also printed as one line
(exit status 1), with its traceback only under CAFFE_PORT_TRACEBACK=1.
"""
from __future__ import annotations

import argparse
import os
import sys

# OpenCV logs its decoders' complaints about a damaged image on stderr (libtiff's "Can not read
# TIFF directory"…) before returning nothing; the command's one line says it: its log is off
# (read when OpenCV loads, which no import here has done yet)
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

from caffe_port import __version__
from caffe_port.cli import batch, benchmark, evaluate, maps, measure, model_tools, teaching
from caffe_port.errors import CaffePortError

DESCRIPTION = """\
Gradient-based CNN visualisation the way Caffe did it, without Caffe.

A Caffe user's recipe  net.blobs['fc8'].diff[...] = onehot; net.backward(start='fc8')
is what every command here runs: the forward pass in ONNX Runtime, the backward pass in
caffe_port's own layer library, from a one-hot at the pre-softmax class scores (Caffe's fc8).

Models: an ONNX file, a Caffe deploy.prototxt with --weights model.caffemodel, or the
embedded default (EfficientNet-Lite0, ImageNet), used when --model is not given.
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="caffe-port", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"caffe_port {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in (maps, batch, evaluate, measure, model_tools, teaching, benchmark):
        group.add_commands(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CaffePortError as e:
        print(f"caffe-port: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        # the checks refuse what they can foresee (caffe_port/memory.py); this is the rest
        print("caffe-port: error: out of memory: use a smaller image, batch or model",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("caffe-port: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:          # a bug, not the user's input: still one line, unless asked
        if os.environ.get("CAFFE_PORT_TRACEBACK"):
            raise
        line = next((s.strip() for s in str(e).splitlines() if s.strip()), "")
        print(f"caffe-port: internal error: {type(e).__name__}{': ' + line[:300] if line else ''} "
              f"(CAFFE_PORT_TRACEBACK=1 shows where)", file=sys.stderr)
        return 1
