"""One batch run: the inputs expanded, the folder opened, what is done skipped, the rest computed
by an engine and committed batch by batch, the index compacted, a line of figures.

    table = run(["photos/", "val.txt"], "out", methods={"saliency": Saliency}, top_k=5)

``run`` returns the index (a pyarrow Table: ``table.to_pandas()`` for a DataFrame).
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from caffe_port.batch.inputs import collect
from caffe_port.batch.local import LocalEngine
from caffe_port.batch.report import write_report
from caffe_port.batch.store import INDEX, Store
from caffe_port.batch.worker import EMBEDDED, MethodSpec, Settings
from caffe_port.errors import InputError
from caffe_port.methods import Saliency
from caffe_port.methods.recipes import recipe as get_recipe
from caffe_port.preprocess import preset as get_preset

ENGINES = ("local", "ray")


def method_specs(methods):
    """``methods`` as MethodSpecs: a mapping name → factory (a method class, or any callable
    ``factory(net, **common)``), or a sequence of MethodSpecs or of method classes (named by
    their lower-cased class name)."""
    if methods is None:
        methods = {"saliency": Saliency}
    if isinstance(methods, dict):
        methods = [MethodSpec(name, factory) for name, factory in methods.items()]
    specs = [m if isinstance(m, MethodSpec) else MethodSpec(m.__name__.lower(), m) for m in methods]
    names = [s.name for s in specs]
    if not specs or len(set(names)) != len(names):
        raise InputError(f"give one or more methods, each once (got {', '.join(names) or 'none'})")
    return tuple(specs)


def run(inputs, out, *, model=EMBEDDED, weights=None, preset=None, methods=None, target=None,
        top_k=None, localize=False, recipe="paper", keep_maps=True, batch_size=16, workers=None, engine="local", ray_address=None,
        actors=None, device="auto", threads=None, score_blob=None, labels=None, force=False,
        progress=True, report=False, net=None, stream=None):
    """Explain every image of ``inputs`` into the folder ``out``; returns the index table.

    inputs:   image files, folders, .txt lists (caffe_port.batch.inputs)
    model, weights, device, threads: as caffe_port.Net's (``net``: a loaded one, local engine)
    preset:   a Preset or preset name (default: "efficientnet-lite0" for the embedded model; other
              models must say)
    methods:  see ``method_specs`` (default: Saliency)
    target, top_k: the classes (``target="label"``: each image's ground truth, from its list)
    localize: a box for each (H, W) map, by ``recipe``'s segmentation (caffe_port.methods.recipes;
              "paper": GrabCut, Simonyan et al. §3.1)
    keep_maps: write each map's .npy (False: the rows only, ``map`` null)
    engine:   "local", "ray", or a callable making the engine from the Settings
              (``functools.partial(RayEngine, actors=4)``)
    force:    discard what ``out`` holds and start over (required when the settings differ)
    progress: a progress bar and the final line on ``stream`` (stderr)
    report:   write out/report.html as well
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if preset is None:
        if not (isinstance(model, str) and model == EMBEDDED):
            raise InputError("say how the model wants its images: preset= (a Preset or 'caffe', "
                             "'torchvision', 'efficientnet-lite0', 'none')")
        preset = EMBEDDED
    specs = method_specs(methods)
    settings = Settings(model=model, preset=get_preset(preset), methods=specs, weights=weights,
                        target=target, top_k=top_k, localize=bool(localize), score_blob=score_blob,
                        labels=None if labels is None else tuple(labels), device=device,
                        threads=threads, batch_size=batch_size, recipe=get_recipe(recipe).name,
                        keep_maps=bool(keep_maps))
    items = collect(inputs)
    stream = stream or sys.stderr
    with Store(out, settings.fingerprint(), [s.name for s in specs], force=force,
               keep_maps=settings.keep_maps) as store:
        if isinstance(engine, str):
            engine = make_engine(engine, settings, net=net, workers=workers, ray_address=ray_address,
                                 actors=actors)
        else:
            engine = engine(settings)
        try:
            table = _run(items, store, engine, progress, stream)
        finally:
            engine.close()
        if report:
            path = write_report(out, table)
            if progress:
                print(f"caffe-port: report: {path}", file=stream)
    return table


def make_engine(name, settings, *, net=None, workers=None, ray_address=None, actors=None):
    if name == "local":
        return LocalEngine(settings, net=net, workers=workers)
    if name == "ray":
        from caffe_port.batch.ray_engine import RayEngine    # ray is the optional extra
        return RayEngine(settings, address=ray_address, actors=actors)
    raise InputError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


def _run(items, store, engine, progress, stream):
    store.compact()             # what a killed run left in parts/ joins the index first
    done = store.done()
    todo = [item for item in items if item.path not in done]
    counts = {"new": 0, "failed": 0, "rows": 0}
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", desc="batch", file=stream, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)

    def committed(results, commit):
        counts["rows"] += commit.result()
        counts["new"] += len(results)
        counts["failed"] += sum(r.error is not None for r in results)
        bar.update(len(results))

    # one batch is written while the next is computed; one writer, one commit in flight, so
    # commits stay in order and a failed write stops the run at the next batch
    writer = ThreadPoolExecutor(1, thread_name_prefix="caffe-port-commit")
    pending = None
    try:
        for results in engine.batches(todo):
            if pending is not None:
                committed(*pending)
            pending = (results, writer.submit(store.commit, results))
        if pending is not None:
            committed(*pending)
    finally:
        writer.shutdown(wait=True)
        bar.close()
        elapsed = time.perf_counter() - t0
        table = store.compact()
        if progress:
            print(summary(len(items), len(items) - len(todo), counts, elapsed, engine.name,
                          os.path.join(store.directory, INDEX)), file=stream)
    return table


def summary(total, before, counts, elapsed, engine, index) -> str:
    """The final line: counts, failures, throughput."""
    rate = counts["new"] / elapsed if elapsed > 0 and counts["new"] else 0.0
    return (f"caffe-port: batch: {total} image(s): {counts['new']} computed, {before} done before, "
            f"{counts['failed']} failed; {counts['rows']} row(s) in {elapsed:.1f} s, "
            f"{rate:.2f} images/s ({engine}); {index}")
