"""``caffe-port``: the command line. Argument parsing and error reporting only.

Every error caffe_port raises on purpose (a missing image, an unknown class, a corrupt model…)
is printed as one line on stderr with a non-zero exit status; the work itself is done by the
library (``caffe_port.methods``, ``caffe_port.render``, ``caffe_port.preprocess``…).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

EMBEDDED = "efficientnet-lite0"
METHODS = ("saliency", "deconvnet", "guided", "cam", "gradcam", "guided-gradcam", "smoothgrad", "ig")
# gradient maps are a few very bright pixels over a dim field: their pictures saturate the top
# 0.5 % (the .npy files keep the raw values); CAM and Grad-CAM maps are smooth and shown min–max
DISPLAY_PERCENTILE = {"cam": 100.0, "gradcam": 100.0}
GRADIENT_PERCENTILE = 99.5
SAMPLE_IMAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "chelsea.jpg")

DESCRIPTION = """\
Gradient-based CNN visualisation the way Caffe did it, without Caffe.

A Caffe user's recipe  net.blobs['fc8'].diff[...] = onehot; net.backward(start='fc8')
is what every command here runs: the forward pass in ONNX Runtime, the backward pass in
caffe_port's own layer library, from a one-hot at the pre-softmax class scores (Caffe's fc8).

Models: an ONNX file, a Caffe deploy.prototxt with --weights model.caffemodel, or the
embedded default (EfficientNet-Lite0, ImageNet), used when --model is not given.
"""


# --- shared options ---------------------------------------------------------------------------------

def _model_options(p, image=True):
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
        g.add_argument("--preset", default=None,
                       choices=("caffe", "torchvision", "efficientnet-lite0", "none"),
                       help="how the model wants its images (default: the embedded model's own; "
                            "'caffe' for a prototxt — BGR, 0-255, mean pixel 104,117,123; "
                            "'torchvision' for other ONNX files)")
        g.add_argument("--mean", default=None, metavar="MEAN",
                       help="override the mean: 'B,G,R' values in the net's channel order, or a "
                            "mean file (.npy as ilsvrc_2012_mean.npy, or .binaryproto), averaged "
                            "per channel as the pycaffe examples do")
        g.add_argument("--resize", type=int, default=None, metavar="S",
                       help="resize the shorter side to S before the centre crop")


def _class_options(p):
    g = p.add_argument_group("classes")
    g.add_argument("--class", dest="target", default=None, metavar="C",
                   help="a class index (281) or name ('tabby cat'); default: the top class")
    g.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="the K best classes, in one backward pass")


def _output_options(p, pictures=True):
    g = p.add_argument_group("output")
    if pictures:
        g.add_argument("--percentile", type=float, default=None, metavar="P",
                       help=f"pictures saturate values above this percentile (default "
                            f"{GRADIENT_PERCENTILE} for gradient maps, 100 = plain min-max for CAM "
                            f"and Grad-CAM); the .npy files keep the raw maps")
    g.add_argument("--out", default=".", metavar="DIR", help="directory for PNGs and .npy files (default: .)")
    g.add_argument("--force", action="store_true", help="overwrite existing files (atomically)")


# --- loading --------------------------------------------------------------------------------------

class Loaded:
    """A net with its pre-processing preset and class names, as the options asked."""

    def __init__(self, args, image=True):
        from caffe_port import Net
        from caffe_port.errors import InputError
        model = args.model or EMBEDDED
        if args.threads is not None and args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        self.model_name = model
        self.net = Net(model, weights=args.weights, device=args.device, threads=args.threads)
        self.labels = _read_labels(args.labels) if getattr(args, "labels", None) else None
        self.score_blob = args.score_blob
        self.preset = self._preset(args, model) if image else None

    def _preset(self, args, model):
        from caffe_port.preprocess import preset
        if args.preset:
            name = args.preset
        elif model == EMBEDDED:
            name = "efficientnet-lite0"
        elif str(model).lower().endswith(".prototxt"):
            name = "caffe"
        else:
            name = "torchvision"
            _note(f"assuming torchvision pre-processing for {os.path.basename(str(model))} "
                  f"(RGB, ImageNet mean/std); pass --preset to choose")
        changes = {}
        image_input = self._image_input()
        shape = self.net.graph.input_shape(image_input, batch=None)
        if len(shape) == 4 and shape[2] is not None and shape[3] is not None:
            changes["crop"] = (int(shape[2]), int(shape[3]))
        if args.resize is not None:
            changes["resize"] = int(args.resize)
        if args.mean is not None:
            changes["mean"] = _parse_mean(args.mean)
        return preset(name, **changes)

    def _image_input(self):
        from caffe_port.methods import find_input_blob
        return find_input_blob(self.net)

    def method_kwargs(self):
        return {"score_blob": self.score_blob, "labels": self.labels}


def _read_labels(path):
    from caffe_port.errors import InputError
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise InputError(f"{path}: cannot read the labels file ({e.strerror})") from None
    # synset_words.txt: "n01440764 tench, Tinca tinca"
    return [line.split(" ", 1)[1] if line[:1] == "n" and line[1:9].isdigit() and " " in line else line
            for line in lines]


def _parse_mean(text):
    import numpy as np
    from caffe_port.errors import InputError
    if os.path.exists(text):
        if text.endswith(".binaryproto"):
            from caffe_port.models.caffe_io import read_blobproto
            mean = np.asarray(read_blobproto(text), dtype=np.float64)
        else:
            try:
                mean = np.load(text)
            except Exception:
                raise InputError(f"{text}: not a .npy mean file") from None
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


def _load_photo(path):
    from caffe_port.preprocess import load_image
    return load_image(path)


def _note(text):
    print(f"caffe-port: {text}", file=sys.stderr)


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0] or "image"


def _ensure_out(directory):
    from caffe_port.errors import InputError
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise InputError(f"--out {directory}: exists and is not a directory")
    os.makedirs(directory, exist_ok=True)


class Outputs:
    """The files one command writes: all checked before any is written, so a refusal to overwrite
    leaves nothing half done."""

    def __init__(self, directory, force):
        self.directory, self.force = directory, force
        self.items = []

    def png(self, name, picture):
        self.items.append(("png", os.path.join(self.directory, name + ".png"), picture))

    def npy(self, name, array):
        self.items.append(("npy", os.path.join(self.directory, name + ".npy"), array))

    def write(self, stream=None):
        """Write every file (paths printed on ``stream``, stdout by default: stderr when stdout
        carries JSON)."""
        from caffe_port.errors import InputError
        from caffe_port.render import write_npy, write_png
        _ensure_out(self.directory)
        if not self.force:
            existing = [path for _, path, _ in self.items if os.path.exists(path)]
            if existing:
                more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
                raise InputError(f"{existing[0]} exists{more}; pass --force to overwrite")
        for kind, path, value in self.items:
            (write_png if kind == "png" else write_npy)(path, value, force=self.force)
            print(path, file=stream or sys.stdout)


# --- commands ---------------------------------------------------------------------------------------

def cmd_classify(args):
    import numpy as np
    loaded = Loaded(args)
    photo = _load_photo(args.image)
    data = loaded.preset.preprocess(photo)
    from caffe_port.methods import Saliency
    method = Saliency(loaded.net, **loaded.method_kwargs())
    scores = method.scores(data)[0]
    k = _check_top_k(args.top_k or 5, scores.size)
    prob = np.exp(scores - scores.max())
    prob /= prob.sum()
    order = np.argsort(-prob, kind="stable")[:k]
    rows = [{"class": int(c), "name": _short_name(method.class_name(int(c))), "prob": float(prob[c])}
            for c in order]
    if args.json:
        print(json.dumps({"top_k": rows}))
    else:
        print(f"{args.image} ({os.path.basename(str(loaded.model_name))})")
        for rank, row in enumerate(rows, 1):
            print(f"  {rank}. {row['class']:>4} {row['name']:<30} {row['prob']:.3f}")
    return 0


def _short_name(name):
    return name.split(",")[0].strip()


def _check_top_k(k, num_classes):
    from caffe_port.errors import InputError
    if not 1 <= k <= num_classes:
        raise InputError(f"--top-k must be in 1…{num_classes}, got {k}")
    return k


def _target(args):
    t = args.target
    if t is None:
        return None
    return int(t) if t.lstrip("-").isdigit() else t


def make_method(loaded, name, args):
    from caffe_port import methods as M
    kw = loaded.method_kwargs()
    if name == "saliency":
        return M.Saliency(loaded.net, **kw)
    if name == "deconvnet":
        return M.Deconvnet(loaded.net, **kw)
    if name == "guided":
        return M.GuidedBackprop(loaded.net, **kw)
    if name == "cam":
        return M.CAM(loaded.net, **kw)
    if name == "gradcam":
        return M.GradCAM(loaded.net, layer=getattr(args, "layer", None), **kw)
    if name == "guided-gradcam":
        return M.GuidedGradCAM(loaded.net, layer=getattr(args, "layer", None), **kw)
    if name == "smoothgrad":
        return M.SmoothGrad(M.Saliency(loaded.net, **kw), samples=args.samples, noise=args.noise,
                            seed=args.seed)
    if name == "ig":
        return M.IntegratedGradients(M.Saliency(loaded.net, **kw), steps=args.steps)
    raise AssertionError(name)


def _percentile(method_name, args):
    given = getattr(args, "percentile", None)
    return given if given is not None else DISPLAY_PERCENTILE.get(method_name, GRADIENT_PERCENTILE)


def _pictures(method_name, maps_k, photo, preset, outputs, stem, class_tag, percentile):
    """One class's map → the PNGs (and .npy) a method promises."""
    from caffe_port import render
    signed = maps_k.ndim == 3          # (C, h, w) signed gradients: deconvnet, guided, guided Grad-CAM
    base = f"{stem}_{method_name}_{class_tag}"
    back = preset.to_original(maps_k, photo.shape[:2])
    if signed:
        for kind, picture in render.signed(back, preset.channel_order, percentile).items():
            outputs.png(f"{base}_{kind}", picture)
    else:
        outputs.png(base, render.grey(back, percentile))
        outputs.png(f"{base}_overlay", render.overlay(photo, back, percentile=percentile))
    outputs.npy(base, back)


def cmd_saliency(args):
    loaded = Loaded(args)
    photo = _load_photo(args.image)
    data = loaded.preset.preprocess(photo)
    method = make_method(loaded, args.method, args)
    if args.top_k is not None:
        _check_top_k(args.top_k, method.num_classes if hasattr(method, "num_classes") else 10 ** 9)
    t0 = time.perf_counter()
    maps = method.attribute(data, target=_target(args), top_k=args.top_k)
    elapsed = time.perf_counter() - t0
    classes, scores = method.classes_, method.scores_
    if args.top_k is None:
        maps = maps[None]
    outputs = Outputs(args.out, args.force)
    stem = _stem(args.image)
    for k in range(classes.shape[0]):
        c = int(classes[k, 0])
        _pictures(args.method, maps[k, 0], photo, loaded.preset, outputs, stem, f"c{c}",
                  _percentile(args.method, args))
        _note(f"{args.method}: class {c} ({_short_name(method.class_name(c))}), score "
              f"{scores[k, 0]:.3f}")
    outputs.write()
    _note(f"{args.method} took {1e3 * elapsed:.0f} ms")
    return 0


def cmd_localize(args):
    from caffe_port import render
    from caffe_port.methods import Localizer, Saliency
    loaded = Loaded(args)
    photo = _load_photo(args.image)
    localizer = Localizer(Saliency(loaded.net, **loaded.method_kwargs()), loaded.preset)
    results = localizer.localize(photo, target=_target(args), top_k=args.top_k)
    boxes = [{"class": r.class_index, "name": _short_name(r.class_name), "score": r.score,
              "box": None if r.box is None else [int(v) for v in r.box]} for r in results]
    if args.out_given or not args.json:
        outputs = Outputs(args.out, args.force)
        stem = _stem(args.image)
        for r in results:
            picture = render.draw_box(photo, r.box, label=_short_name(r.class_name))
            outputs.png(f"{stem}_localize_c{r.class_index}", picture)
            outputs.png(f"{stem}_localize_c{r.class_index}_mask", (r.mask * 255).astype("uint8"))
        outputs.write(sys.stderr if args.json else None)
    if args.json:
        print(json.dumps({"boxes": boxes}))
    else:
        for b in boxes:
            print(f"class {b['class']} ({b['name']}), score {b['score']:.3f}: box {b['box']}")
    return 0


def cmd_classmodel(args):
    from caffe_port.methods import ClassModel
    loaded = Loaded(args)
    if args.target is None:
        from caffe_port.errors import InputError
        raise InputError("classmodel needs --class (an index or a name, e.g. --class goose)")
    targets = [_as_class(t) for t in args.target.split(";")]
    model = ClassModel(loaded.net, preset=loaded.preset, **loaded.method_kwargs())
    result = model.generate(targets, iterations=args.iterations, lr=args.lr,
                            weight_decay=args.weight_decay, jitter=args.jitter,
                            blur_every=args.blur_every, blur_sigma=args.blur_sigma,
                            clip_percentile=args.clip_percentile, seed=args.seed,
                            progress=not args.quiet)
    outputs = Outputs(args.out, args.force)
    for k, c in enumerate(result.classes):
        c = int(c)
        outputs.png(f"classmodel_c{c}", _upscale(result.images[k]))
        outputs.npy(f"classmodel_c{c}", result.data[k])
        _note(f"class {c} ({_short_name(model.class_name(c))}): score {result.scores[k, c]:.2f}, "
              f"softmax {result.probabilities[k, c]:.3f}")
    outputs.write()
    return 0


def _as_class(text):
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _upscale(picture, size=224):
    import cv2
    h, w = picture.shape[:2]
    if max(h, w) >= size:
        return picture
    f = size / max(h, w)
    return cv2.resize(picture, (round(w * f), round(h * f)), interpolation=cv2.INTER_NEAREST)


def cmd_grid(args):
    return _grid(args, args.image)


def cmd_demo(args):
    _note(f"the sample photograph is scikit-image's 'chelsea' (CC0), bundled as {SAMPLE_IMAGE}")
    args.model, args.weights, args.preset = None, None, None
    return _grid(args, SAMPLE_IMAGE)


def _grid(args, image_path):
    from caffe_port import render
    from caffe_port.errors import InputError
    from caffe_port.methods import Localizer, Saliency, ClassModel
    loaded = Loaded(args)
    photo = _load_photo(image_path)
    data = loaded.preset.preprocess(photo)
    kw = loaded.method_kwargs()
    base = Saliency(loaded.net, **kw)
    t = base.targets(data, _target(args), None)
    base.release()
    c = int(t.classes[0, 0])
    name = _short_name(base.class_name(c))
    tiles, captions = [_fit_tile(photo)], [f"{name} (class {c}), score {t.scores[0, 0]:.2f}"]
    timings = {}
    for method_name in ("saliency", "deconvnet", "guided", "gradcam", "guided-gradcam", "cam"):
        try:
            method = make_method(loaded, method_name, args)
        except InputError as e:
            _note(f"{method_name} skipped: {e}")
            continue
        t0 = time.perf_counter()
        maps = method.attribute(data, target=c)[0]
        timings[method_name] = time.perf_counter() - t0
        back = loaded.preset.to_original(maps, photo.shape[:2])
        percentile = _percentile(method_name, args)
        if back.ndim == 3:
            picture = render.signed(back, loaded.preset.channel_order, percentile)["all"]
        elif method_name in ("gradcam", "cam"):
            picture = render.overlay(photo, back, percentile=percentile)
        else:
            picture = render.grey(back, percentile)
        tiles.append(_fit_tile(picture))
        captions.append(method_name)
    localizer = Localizer(Saliency(loaded.net, **kw), loaded.preset)
    found = localizer.localize(photo, target=c)[0]
    tiles.append(_fit_tile(render.draw_box(photo, found.box)))
    captions.append(f"localisation {found.box}")
    if args.iterations > 0:
        model = ClassModel(loaded.net, preset=loaded.preset, **kw)
        result = model.generate(c, iterations=args.iterations, seed=args.seed, progress=not args.quiet)
        tiles.append(_fit_tile(result.images[0]))
        captions.append(f"class model, softmax {result.probabilities[0, c]:.2f}")
    picture = render.grid(tiles, captions, columns=args.columns)
    outputs = Outputs(args.out, args.force)
    outputs.png(f"{_stem(image_path)}_grid_c{c}", picture)
    outputs.write()
    _note("times: " + ", ".join(f"{k} {1e3 * v:.0f} ms" for k, v in timings.items()))
    return 0


def _fit_tile(picture, size=224):
    import cv2
    h, w = picture.shape[:2]
    f = size / max(h, w)
    return cv2.resize(picture, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
                      if f < 1 else cv2.INTER_NEAREST)


def cmd_info(args):
    import numpy as np
    loaded = Loaded(args, image=False)
    net = loaded.net
    feeds = {}
    for name in net.inputs:
        shape = net.graph.input_shape(name, batch=1)
        if None in shape:
            shape = tuple(224 if s is None else s for s in shape)
        feeds[name] = np.zeros(shape, dtype=net.graph.input_dtype(name))
    net.forward(**feeds)
    layers = [{"name": n.name, "type": n.op_type, "bottoms": [i for i in n.inputs if i],
               "tops": [o for o in n.outputs if o]} for n in net.graph.nodes]
    blobs = {b: list(net.blobs[b].shape) for b in net.blobs}
    params = {layer: [list(p.shape) for p in blobs_] for layer, blobs_ in net.params.items()}
    if args.json:
        print(json.dumps({"inputs": net.inputs, "outputs": net.outputs, "layers": layers,
                          "blobs": blobs, "params": params}))
        return 0
    print(f"{loaded.model_name}: {len(layers)} layers, inputs {net.inputs}, outputs {net.outputs}")
    print("\nlayers (name, type: bottoms -> tops)")
    for layer in layers:
        print(f"  {layer['name']:<28} {layer['type']:<20} {', '.join(layer['bottoms']) or '-'} -> "
              f"{', '.join(layer['tops'])}")
    print("\nblobs (shape for one image)")
    for b, shape in blobs.items():
        print(f"  {b:<36} {tuple(shape)}")
    print("\nparams")
    total = 0
    for layer, shapes in params.items():
        count = sum(int(np.prod(s)) for s in shapes)
        total += count
        print(f"  {layer:<28} {' '.join(str(tuple(s)) for s in shapes):<40} {count:,}")
    print(f"  total {total:,} parameters")
    return 0


def cmd_gradcheck(args):
    from caffe_port.gradcheck import gradcheck
    report = gradcheck(args.model, layer=args.layer, rule=args.rule, points=args.points,
                       input_size=args.size, weights=args.weights)
    print(json.dumps(report.as_dict()) if args.json else report)
    return 0 if report.ok else 1


def cmd_trace(args):
    from caffe_port.trace import format_trace, trace_json, trace_picture, trace_rules
    loaded = Loaded(args)
    data = loaded.preset.preprocess(_load_photo(args.image))
    result = trace_rules(loaded.net, data[0], class_index=_target(args), score_blob=args.score_blob)
    outputs = Outputs(args.out, args.force)
    outputs.png(f"{_stem(args.image)}_trace",
                trace_picture(result, bgr=loaded.preset.channel_order == "BGR"))
    outputs.write(sys.stderr if args.json else None)
    print(json.dumps(trace_json(result)) if args.json else format_trace(result))
    return 0


def cmd_bench(args):
    from caffe_port.bench import run_from_args
    return run_from_args(args)


def cmd_convert(args):
    import tempfile
    import onnx
    from caffe_port.errors import InputError
    from caffe_port.models.caffe_net import caffe_to_onnx
    if os.path.exists(args.output) and not args.force:
        raise InputError(f"{args.output} exists; pass --force to overwrite")
    model = caffe_to_onnx(args.prototxt, args.caffemodel)
    directory = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(directory):
        raise InputError(f"{args.output}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".caffe-port-", suffix=".onnx", dir=directory)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        if args.force:
            os.replace(tmp, args.output)
        else:
            os.link(tmp, args.output)   # fails if the name appeared meanwhile: never clobber
            os.unlink(tmp)
    except FileExistsError:
        os.unlink(tmp)
        raise InputError(f"{args.output} exists; pass --force to overwrite") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(f"{args.output}: {len(model.graph.node)} nodes, opset "
          f"{model.opset_import[0].version}, inputs {[i.name for i in model.graph.input]}, "
          f"outputs {[o.name for o in model.graph.output]}")
    return 0


# --- the parser --------------------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog="caffe-port", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    from caffe_port import __version__
    parser.add_argument("--version", action="version", version=f"caffe_port {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("classify", help="top-k classes of an image",
                       description="Classify an image: the top-k classes and their softmax probabilities.")
    p.add_argument("image")
    _model_options(p)
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="how many classes (default 5)")
    p.add_argument("--json", action="store_true",
                   help='print {"top_k": [{"class": 281, "name": "tabby", "prob": 0.71}, ...]}')
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("saliency", help="saliency / deconvnet / guided / CAM / Grad-CAM maps of an image",
                       description="Maps for one image, written as PNGs (grey map, overlay; signed "
                                   "methods: all/positive/negative) and raw .npy, in original-image "
                                   "pixels. 'saliency' is Simonyan et al.'s max over channels of "
                                   "|d score / d image|, the score being the pre-softmax fc8.")
    p.add_argument("image")
    p.add_argument("--method", default="saliency", choices=METHODS)
    p.add_argument("--layer", default=None, help="Grad-CAM's blob (default: the last spatial one)")
    p.add_argument("--samples", type=int, default=50, help="SmoothGrad: noisy copies (default 50)")
    p.add_argument("--noise", type=float, default=0.15, help="SmoothGrad: sigma as a fraction of the range")
    p.add_argument("--steps", type=int, default=50, help="Integrated Gradients: steps (default 50)")
    p.add_argument("--seed", type=int, default=0)
    _model_options(p)
    _class_options(p)
    _output_options(p)
    p.set_defaults(func=cmd_saliency)

    p = sub.add_parser("classmodel", help="class model visualisation (Simonyan et al. §2)",
                       description="Gradient ascent on the image for S_c(I) - lambda |I|^2 from the zero "
                                   "image; the mean is added back at the end.")
    _model_options(p)
    p.add_argument("--class", dest="target", default=None, metavar="C",
                   help="class index or name; several separated by ';' (e.g. 'goose;ostrich')")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--lr", type=float, default=1.0, help="step size")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="lambda of the L2 penalty")
    p.add_argument("--jitter", type=int, default=0, help="random shifts in pixels (off by default)")
    p.add_argument("--blur-every", type=int, default=0, help="Gaussian blur every N steps (off by default)")
    p.add_argument("--blur-sigma", type=float, default=1.0)
    p.add_argument("--clip-percentile", type=float, default=0.0,
                   help="zero pixels below this percentile of norm (off by default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _output_options(p, pictures=False)
    p.set_defaults(func=cmd_classmodel)

    p = sub.add_parser("localize", help="weakly supervised localisation (Simonyan et al. §3.1)",
                       description="Saliency -> GrabCut colour models -> largest component -> box.")
    p.add_argument("image")
    _model_options(p)
    _class_options(p)
    _output_options(p)
    p.add_argument("--json", action="store_true",
                   help='print {"boxes": [{"class", "name", "score", "box": [x0, y0, x1, y1]}, ...]} '
                        '(boxes half-open, original-image pixels); PNGs only with --out')
    p.set_defaults(func=cmd_localize)

    for name, helptext, func in (("grid", "all methods side by side for one image", cmd_grid),
                                 ("demo", "the grid for the bundled sample photo on the embedded model",
                                  cmd_demo)):
        p = sub.add_parser(name, help=helptext, description=helptext + ": saliency, deconvnet, guided, "
                           "Grad-CAM, guided Grad-CAM, CAM, the localisation box and the class model.")
        if name == "grid":
            p.add_argument("image")
            _model_options(p)
        else:
            _model_options(p)
        p.add_argument("--class", dest="target", default=None, metavar="C")
        p.add_argument("--iterations", type=int, default=100, help="class model steps (0: none)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--columns", type=int, default=5)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        _output_options(p)
        p.set_defaults(func=func)

    p = sub.add_parser("info", help="layers, blob shapes and params of a model",
                       description="What Caffe printed at net construction: layers, blob shapes, params.")
    _model_options(p, image=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("gradcheck", help="check every layer's backward against finite differences",
                       description="Caffe's GradientChecker for a whole model: every layer's backward "
                                   "on the model's real shapes (float64, random data, real weights) "
                                   "against central finite differences, kinks skipped; for the "
                                   "deconvnet/guided rules the ReLU layers are checked against their "
                                   "formulas. Exit status 1 when a layer fails.")
    p.add_argument("model", help="an .onnx file, a deploy.prototxt (with --weights), "
                                 f"'{EMBEDDED}', or a builder name such as vgg16")
    p.add_argument("--weights", default=None, metavar="W", help="the .caffemodel of a prototxt")
    p.add_argument("--layer", default=None, help="check only this layer")
    p.add_argument("--rule", default="backprop", choices=("backprop", "deconvnet", "guided"))
    p.add_argument("--points", type=int, default=16, help="sampled points per layer (default 16)")
    p.add_argument("--size", type=int, default=None, metavar="S",
                   help="run at S×S input to make it fast (e.g. 32 for VGG16)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("trace", help="how the diff flows to the image under the three rules",
                       description="Caffe's debug_info for the three ReLU rules on one image: mean "
                                   "|diff| per layer (log scale) and the pass fraction at each ReLU, "
                                   "beside the three input maps; one PNG, plus the numbers.")
    p.add_argument("image")
    _model_options(p)
    p.add_argument("--class", dest="target", default=None, metavar="C")
    _output_options(p, pictures=False)
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(func=cmd_trace)

    from caffe_port import bench
    p = sub.add_parser("bench", help="time the backward against PyTorch, five passes and sgemm",
                       description=bench.__doc__.split("\n\n")[0] + " Each configuration runs in a "
                                   "fresh subprocess; see docs/benchmarks.md.")
    bench.add_arguments(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("convert", help="Caffe deploy.prototxt + .caffemodel -> ONNX",
                       description="Convert a Caffe model to ONNX (Caffe's pooling arithmetic, in-place "
                                   "blobs and layer names kept).")
    p.add_argument("prototxt")
    p.add_argument("caffemodel", nargs="?", default=None)
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--force", action="store_true", help="overwrite OUT.onnx (atomically)")
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "out"):
        raw = sys.argv[1:] if argv is None else list(argv)
        args.out_given = any(a == "--out" or a.startswith("--out=") for a in raw)
    from caffe_port.errors import CaffePortError
    try:
        return int(args.func(args) or 0)
    except CaffePortError as e:
        print(f"caffe-port: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("caffe-port: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
