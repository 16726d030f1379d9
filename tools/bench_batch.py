"""End-to-end saliency throughput of ``caffe-port batch`` against the ways one could do the same work.

    python tools/bench_batch.py [--images 200] [--models efficientnet-lite0,vgg16] [--threads 2]
                                [--json out.json] [--skip ray,torch,cli]

Each pipeline does the same work on the same image set, in this process or its children, with the
same thread count: decode the JPEG, pre-process (the model's preset), forward, the input gradient
of the top class (Simonyan et al.'s saliency: max over channels of |dS_c/dI|), the map back in the
photograph's pixels, np.save.

    batch local   caffe_port.batch.run, decoding threads beside the net (model load included)
    batch ray     the same on a local Ray (started beforehand, as a cluster would be; the actors'
                  model load included)
    pytorch       a DataLoader with worker processes decoding and pre-processing, the same ONNX
                  model run by caffe_port.bench.torch_peer.TorchNet, autograd's input gradient,
                  abs-max, Preset.to_original, np.save (model build excluded)
    cli loop      `caffe-port saliency IMAGE` once per image (process start, model load, one image),
                  timed on a few images and given per image

The image set is made from scikit-image's CC0 photographs (skimage.data), cropped, scaled and
mirrored into --images JPEGs of 300–640 pixels a side. The resident memory of the local run is
sampled after each batch (the figure at 10 % and at 100 % of the images).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

from caffe_port.models.builders import logits_blob, vgg16
from caffe_port.models.efficientnet_lite import efficientnet_lite0

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field",
          "immunohistochemistry", "retina", "cat", "colorwheel", "logo")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_images(folder, count, seed=0):
    import cv2
    from skimage import data
    sources = []
    for name in PHOTOS:
        try:
            image = getattr(data, name)()
        except Exception:        # a photograph that needs a download (pooch) is left out
            continue
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        sources.append(np.ascontiguousarray(image[..., :3]))
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        source = sources[i % len(sources)]
        h, w = source.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = source[top:top + ch, left:left + cw]
        side = int(rng.integers(300, 641))
        f = side / max(ch, cw)
        crop = cv2.resize(crop, (max(1, round(cw * f)), max(1, round(ch * f))), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        path = os.path.join(folder, f"img{i:04d}.jpg")
        cv2.imwrite(path, np.ascontiguousarray(crop[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


class Measured:
    """The local engine, recording the RSS after each batch."""

    def __init__(self, engine, samples):
        self.engine, self.samples, self.name = engine, samples, engine.name
        self.done = 0

    def batches(self, items):
        for results in self.engine.batches(items):
            self.done += len(results)
            self.samples.append((self.done, rss_mib()))
            yield results

    def close(self):
        self.engine.close()


def run_batch(paths, model, preset_name, threads, out, engine, batch_size):
    from caffe_port.batch import job
    from caffe_port.batch.local import LocalEngine
    from caffe_port.methods import Saliency
    samples = []
    if engine == "local":
        factory = lambda settings: Measured(LocalEngine(settings, workers=threads), samples)  # noqa: E731
    else:
        from caffe_port.batch.ray_engine import RayEngine
        factory = functools.partial(RayEngine, actors=1)
    t0 = time.perf_counter()
    table = job.run(paths, out, model=model, preset=preset_name, methods={"saliency": Saliency},
                    batch_size=batch_size, threads=threads, progress=False, engine=factory)
    seconds = time.perf_counter() - t0
    assert table.num_rows == len(paths) and set(table["status"].to_pylist()) == {"ok"}
    row = {"seconds": seconds, "images_per_s": len(paths) / seconds}
    if samples:
        n = len(paths)
        at = lambda fraction: next(r for done, r in samples if done >= fraction * n)  # noqa: E731
        row.update(rss_10_mib=at(0.1), rss_100_mib=at(1.0))
    return row


def run_torch(paths, model_path, preset_name, threads, out, batch_size):
    import cv2
    import torch
    from torch.utils.data import DataLoader, Dataset

    from caffe_port.bench.torch_peer import TorchNet
    from caffe_port.preprocess import load_image, preset

    torch.set_num_threads(threads)
    p = preset(preset_name)
    proto = onnx.load(model_path)
    scores = logits_blob(proto)
    net = TorchNet(proto)

    class Photos(Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            photo = load_image(paths[i])
            return p.preprocess(photo)[0], np.asarray(photo.shape[:2]), i

    cv2.setNumThreads(1)
    loader = DataLoader(Photos(), batch_size=batch_size, num_workers=threads, shuffle=False)
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    for data, sizes, indices in loader:
        net.forward(**{net.input_names[0]: data.numpy()})
        logits = net.blob(scores)
        onehot = np.zeros_like(logits)
        onehot[np.arange(len(logits)), logits.argmax(axis=1)] = 1
        grad = net.backward(**{scores: onehot})[net.input_names[0]]
        maps = np.abs(grad).max(axis=1)
        for k, i in enumerate(indices.tolist()):
            full = p.to_original(maps[k], tuple(sizes[k].tolist()))
            np.save(os.path.join(out, f"{i:04d}.npy"), full)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "images_per_s": len(paths) / seconds}


def run_cli(paths, model, preset_name, threads, out, count):
    command = [sys.executable, "-m", "caffe_port.cli", "saliency", "--model", model, "--preset", preset_name,
               "--threads", str(threads), "--out", out, "--force"]
    subprocess.run(command + [paths[0]], check=True, capture_output=True)      # warm: Numba's cache
    t0 = time.perf_counter()
    for path in paths[:count]:
        subprocess.run(command + [path], check=True, capture_output=True)
    per_image = (time.perf_counter() - t0) / count
    return {"seconds_per_image": per_image, "images_per_s": 1.0 / per_image, "timed_images": count}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--models", default="efficientnet-lite0,vgg16")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cli-images", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of the batch and PyTorch pipelines, interleaved; the best counts")
    parser.add_argument("--skip", default="", help="comma list of ray, torch, cli")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    work = tempfile.mkdtemp(prefix="caffe_port_bench_batch-")
    result = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads, "images": args.images,
              "batch_size": args.batch_size, "models": {}}
    try:
        paths = make_images(os.path.join(work, "images"), args.images)
        if "ray" not in skip:
            ray = __import__("ray")          # the ray extra, only when the Ray engine is timed
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, object_store_memory=512 * 2**20)
        for name in args.models.split(","):
            if name == "vgg16":
                model = os.path.join(work, "vgg16.onnx")
                onnx.save(vgg16(), model)
                preset_name = "torchvision"
            else:
                model = name
                onnx_path = os.path.join(work, "efficientnet-lite0.onnx")
                onnx.save(efficientnet_lite0(), onnx_path)
                preset_name = "efficientnet-lite0"
            rows = {}
            out = lambda what: os.path.join(work, f"{name}-{what}")  # noqa: E731
            for round_ in range(args.rounds):
                # interleaved, so that a change in the machine's load falls on every pipeline
                timed = {"batch_local": lambda: run_batch(paths, model, preset_name, args.threads, out("local"),
                                                          "local", args.batch_size)}
                if "ray" not in skip:
                    timed["batch_ray"] = lambda: run_batch(paths, model, preset_name, args.threads, out("ray"),
                                                           "ray", args.batch_size)
                if "torch" not in skip:
                    timed["pytorch"] = lambda: run_torch(paths, model if name == "vgg16" else onnx_path,
                                                         preset_name, args.threads, out("torch"), args.batch_size)
                for what, measure in timed.items():
                    load = os.getloadavg()[0]
                    row = {**measure(), "load_average": load, "round": round_}
                    print(name, what, row, flush=True)
                    rows.setdefault(what, []).append(row)
                    for folder in ("local", "ray", "torch"):
                        shutil.rmtree(out(folder), ignore_errors=True)
            rows = {what: max(runs, key=lambda r: r["images_per_s"]) | {"all_images_per_s": [
                r["images_per_s"] for r in runs]} for what, runs in rows.items()}
            if "cli" not in skip:
                rows["cli_loop"] = run_cli(paths, model, preset_name, args.threads, out("cli"), args.cli_images)
                print(name, "cli loop", rows["cli_loop"], flush=True)
            local = rows["batch_local"]["images_per_s"]
            rows["ratios"] = {k: local / v["images_per_s"] for k, v in rows.items() if k != "batch_local"}
            result["models"][name] = rows
            for what in ("local", "ray", "torch", "cli"):
                shutil.rmtree(out(what), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if "ray" not in skip:
            ray.shutdown()
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
