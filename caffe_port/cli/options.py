"""The options commands share, and what they load: the net, its pre-processing and class names.

    model_options(p)     --model --weights --score-blob --labels --device --threads, and for
                         commands that read photographs --preset --mean --resize
    class_options(p)     --class --top-k
    method_options(p)    --layer --samples --noise --steps --seed (what the methods' constructors take)
    output_options(p)    --percentile (commands that draw maps) --out --force
    Loaded(args)         the Net, its Preset and labels, as those options ask
"""
from __future__ import annotations

import os

import numpy as np

from caffe_port import render
from caffe_port.cli.outputs import note
from caffe_port.errors import InputError
from caffe_port.methods import find_input_blob
from caffe_port.models.caffe_io import read_blobproto
from caffe_port.net import Net
from caffe_port.preprocess import preset

EMBEDDED = "efficientnet-lite0"
PRESETS = ("caffe", "torchvision", "efficientnet-lite0", "none")


def model_options(p, image=True):
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, metavar="M",
                   help=f"an .onnx file, a Caffe deploy.prototxt, or '{EMBEDDED}' (the default)")
    g.add_argument("--weights", default=None, metavar="W",
                   help="the .caffemodel that goes with a deploy.prototxt")
    g.add_argument("--score-blob", default=None, metavar="B",
                   help="the pre-softmax class scores, Caffe's 'fc8' (default: the input of the "
                        "output Softmax, else the output)")
    g.add_argument("--labels", default=None, metavar="FILE",
                   help="class names, one per line (Caffe's synset_words.txt works); default: "
                        "ImageNet's for 1000-class nets")
    g.add_argument("--device", default="auto", metavar="D",
                   help="auto (CUDA when ONNX Runtime sees a GPU), cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for ONNX Runtime and the backward (default: all cores)")
    if image:
        g = p.add_argument_group("pre-processing")
        g.add_argument("--preset", default=None, choices=PRESETS,
                       help="how the model wants its images (default: the embedded model's own; "
                            "'caffe' for a prototxt — BGR, 0-255, mean pixel 104,117,123; "
                            "'torchvision' for other ONNX files)")
        g.add_argument("--mean", default=None, metavar="MEAN",
                       help="override the mean: 'B,G,R' values in the net's channel order, or a "
                            "mean file (.npy as ilsvrc_2012_mean.npy, or .binaryproto), averaged "
                            "per channel as the pycaffe examples do")
        g.add_argument("--resize", type=int, default=None, metavar="S",
                       help="resize the shorter side to S before the centre crop")


def class_options(p):
    g = p.add_argument_group("classes")
    g.add_argument("--class", dest="target", default=None, metavar="C",
                   help="a class index (281) or name ('tabby cat'); default: the top class")
    g.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="the K best classes, in one backward pass")


def method_options(p):
    g = p.add_argument_group("method options")
    g.add_argument("--layer", default=None, help="Grad-CAM's blob (default: the last spatial one)")
    g.add_argument("--samples", type=int, default=50, help="SmoothGrad: noisy copies (default 50)")
    g.add_argument("--noise", type=float, default=0.15, help="SmoothGrad: sigma as a fraction of the range")
    g.add_argument("--steps", type=int, default=50, help="Integrated Gradients: steps (default 50)")
    g.add_argument("--seed", type=int, default=0)


def output_options(p, pictures=True):
    g = p.add_argument_group("output")
    if pictures:
        g.add_argument("--percentile", type=float, default=None, metavar="P",
                       help=f"pictures saturate values above this percentile (default "
                            f"{render.GRADIENT.percentile} for gradient maps, 100 = plain min-max "
                            f"for CAM and Grad-CAM); the .npy files keep the raw maps")
    # None, not ".": a command can tell that --out was given (localize --json writes PNGs only then)
    g.add_argument("--out", default=None, metavar="DIR", help="directory for PNGs and .npy files (default: .)")
    g.add_argument("--force", action="store_true", help="overwrite existing files (atomically)")


def as_class(text):
    """A --class value: an index ("281") or a name ("tabby cat")."""
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def target(args):
    """The class --class names (None: the top class)."""
    return None if args.target is None else as_class(args.target)


def check_top_k(k, num_classes):
    if not 1 <= k <= num_classes:
        raise InputError(f"--top-k must be in 1…{num_classes}, got {k}")
    return k


class Loaded:
    """A net with its pre-processing preset and class names, as the options asked."""

    def __init__(self, args, image=True):
        model = args.model or EMBEDDED
        if args.threads is not None and args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        self.model_name = model
        self.net = Net(model, weights=args.weights, device=args.device, threads=args.threads)
        self.labels = read_labels(args.labels) if args.labels else None
        self.score_blob = args.score_blob
        self.preset = self._preset(args, model) if image else None

    def _preset(self, args, model):
        if args.preset:
            name = args.preset
        elif model == EMBEDDED:
            name = "efficientnet-lite0"
        elif str(model).lower().endswith(".prototxt"):
            name = "caffe"
        else:
            name = "torchvision"
            note(f"assuming torchvision pre-processing for {os.path.basename(str(model))} "
                 f"(RGB, ImageNet mean/std); pass --preset to choose")
        changes = {}
        shape = self.net.graph.input_shape(find_input_blob(self.net), batch=None)
        if len(shape) == 4 and shape[2] is not None and shape[3] is not None:
            changes["crop"] = (int(shape[2]), int(shape[3]))
        if args.resize is not None:
            changes["resize"] = int(args.resize)
        if args.mean is not None:
            changes["mean"] = parse_mean(args.mean)
        return preset(name, **changes)

    def method_kwargs(self):
        """What every method takes from the model options: score_blob, labels."""
        return {"score_blob": self.score_blob, "labels": self.labels}


def read_labels(path):
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise InputError(f"{path}: cannot read the labels file ({e.strerror})") from None
    # synset_words.txt: "n01440764 tench, Tinca tinca"
    return [line.split(" ", 1)[1] if line[:1] == "n" and line[1:9].isdigit() and " " in line else line
            for line in lines]


def parse_mean(text):
    """--mean: 'B,G,R' (or one value for all channels) or a mean file → three values."""
    if os.path.exists(text):
        if text.endswith(".binaryproto"):
            mean = np.asarray(read_blobproto(text), dtype=np.float64)
        else:
            try:
                mean = np.load(text)
            except Exception:
                raise InputError(f"{text}: not a .npy mean file") from None
        if mean.size == 0 or not np.issubdtype(mean.dtype, np.number):
            raise InputError(f"{text}: the mean file holds no numbers (shape {mean.shape}, "
                             f"dtype {mean.dtype})")
        if not np.all(np.isfinite(mean)):
            raise InputError(f"{text}: the mean holds NaN or infinite values")
        mean = mean.reshape((-1,) + mean.shape[-2:]) if mean.ndim >= 2 else mean
        values = mean.mean(axis=(1, 2)) if mean.ndim == 3 else mean.reshape(-1)
    else:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise InputError(f"--mean {text!r}: neither a file nor comma-separated numbers") from None
    values = tuple(float(v) for v in np.asarray(values).reshape(-1))
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise InputError(f"--mean needs 1 or 3 values (one per channel), got {len(values)}")
    return values
