"""``evaluate``: a localisation recipe run over an annotated image set by the batch machinery,
its boxes scored by the ILSVRC rule (rule.py), the rows written next to the index.

    result = evaluate(["val/"], "annotations/", "out", recipe="paper")
    result.errors        {"top1_loc_error": 0.6, "top5_loc_error": 0.4, "top1_cls_error": …, …}
    result.table         DIR/evaluation.parquet as a pyarrow Table

The set goes through ``caffe_port.batch.run`` with the recipe's map as its one method, the top
five classes (fewer on a net with fewer classes) and the recipe's segmentation; maps are not
kept unless asked. The run resumes like any batch (rerun the same command: only what is missing
is computed); the scoring is redone each time, from the index and the annotations, into
DIR/evaluation.parquet, one row per image × ground-truth class × predicted class:

    image, path, status ('ok', or why the image was not scored), label, label_name, weight (1/n
    for an image with n ground-truth classes), truth (that class's boxes), rank, class, name,
    score, box, iou (the box's best IoU with the truth boxes), classified_top1/_top5,
    localised_top1/_top5, height, width

Boxes are half-open, 0-based, in each image's own pixels (annotations.py). An image that could
not be read, or whose annotation does not fit it, is left out of the errors and listed as failed.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from caffe_port.batch.inputs import collect
from caffe_port.batch.job import run as run_batch
from caffe_port.batch.store import EVALUATION, OK
from caffe_port.batch.worker import EMBEDDED, MethodSpec
from caffe_port.errors import InputError
from caffe_port.evaluation.annotations import class_resolver, load, match
from caffe_port.evaluation.rule import TOP, Prediction, errors, judge
from caffe_port.methods.base import Method
from caffe_port.methods.recipes import recipe as get_recipe
from caffe_port.net import Net
from caffe_port.render import write_bytes

BOX = pa.list_(pa.int32(), 4)
SCHEMA = pa.schema([
    ("image", pa.string()), ("path", pa.string()), ("status", pa.string()),
    ("label", pa.int64()), ("label_name", pa.string()), ("weight", pa.float64()),
    ("truth", pa.list_(pa.list_(pa.float64(), 4))),
    ("rank", pa.int32()), ("class", pa.int64()), ("name", pa.string()), ("score", pa.float64()),
    ("box", BOX), ("iou", pa.float64()),
    ("classified_top1", pa.bool_()), ("classified_top5", pa.bool_()),
    ("localised_top1", pa.bool_()), ("localised_top5", pa.bool_()),
    ("height", pa.int32()), ("width", pa.int32()),
])


@dataclass
class Evaluation:
    """What ``evaluate`` measured (module docstring)."""
    recipe: str
    errors: dict                    # the four errors, fractions (None with no image scored)
    images: list                    # one record per image × ground-truth class (``as_json``)
    failed: list                    # [{"image", "status"}]
    table: pa.Table = field(repr=False, default=None)
    path: str | None = None         # DIR/evaluation.parquet

    @property
    def scored(self) -> int:
        return len({record["image"] for record in self.images})

    def as_json(self) -> dict:
        return {**self.errors, "recipe": self.recipe, "scored": self.scored, "images": self.images,
                "failed": self.failed}


def evaluate(inputs, annotations, out, *, recipe="paper", method_options=None, model=EMBEDDED,
             weights=None, preset=None, keep_maps=False, score_blob=None, labels=None, net=None,
             device="auto", threads=None, engine="local", force=False, progress=True, stream=None,
             **batch_options) -> Evaluation:
    """Localise every image of ``inputs`` with ``recipe`` into the folder ``out`` and score the
    boxes against ``annotations`` (a folder of VOC XMLs, one XML, or a CSV).

    method_options: the recipe's map's own options (layer=, samples=, noise=, seed=)
    keep_maps:      write the maps' .npy as well (off: an ILSVRC-sized set's maps are 100s of GB)
    batch_options:  batch_size, workers, ray_address, actors, report (``caffe_port.batch.run``)
    the rest:       as ``caffe_port.batch.run``'s
    """
    chosen = get_recipe(recipe)
    items = collect(inputs)
    if not items:
        raise InputError("no images to evaluate in " + ", ".join(map(str, [inputs] if isinstance(inputs, str)
                                                                          else inputs)))
    if net is None:
        net = Net(model, weights=weights, device=device, threads=threads)
    scorer = Method(net, score_blob=score_blob, labels=labels)
    truths = match(items, load(annotations, class_resolver(scorer.num_classes, scorer.labels)))
    options = dict(method_options or {})
    spec = MethodSpec(chosen.name, _Factory(chosen, options), options)
    index = run_batch(inputs, out, model=model, weights=weights, preset=preset, methods=[spec],
                      top_k=min(max(TOP), scorer.num_classes), localize=True, recipe=chosen.name,
                      keep_maps=keep_maps, score_blob=score_blob, labels=labels, device=device,
                      threads=threads, engine=engine, net=net if engine == "local" else None,
                      force=force, progress=progress, stream=stream, **batch_options)
    result = score(items, truths, index, scorer.class_name, chosen.name)
    result.path = write_table(out, result.table)
    return result


class _Factory:
    """The recipe's method, as a batch MethodSpec factory (picklable, for the Ray engine)."""

    def __init__(self, recipe, options):
        self.recipe, self.options = recipe, options

    def __call__(self, net, **common):
        return self.recipe.build(net, self.options, **common)


def score(items, truths, index, class_name, recipe_name) -> Evaluation:
    """Judge each item's rows of ``index`` (the batch table) against ``truths`` {path: GroundTruth}."""
    rows_of = {}
    for row in index.to_pylist():
        rows_of.setdefault(row["path"], []).append(row)
    records, table_rows, failed, judged = [], [], [], []
    for item in items:
        rows = rows_of.get(item.path, [])
        status = rows[0]["status"] if rows else "not computed"
        truth = truths[item.path]
        objects = None
        if status == OK:
            height, width = rows[0]["height"], rows[0]["width"]
            status, objects = fitted(truth, width, height)
        if status != OK:
            failed.append({"image": item.image, "status": status})
            table_rows.append({"image": item.image, "path": item.path, "status": status})
            continue
        predictions = [Prediction(r["class"], r["score"], None if r["box"] is None else tuple(r["box"]))
                       for r in rows]
        judgements = judge(objects, predictions)
        judged.append(judgements)
        for j in judgements:
            record = _record(item, j, class_name)
            records.append(record)
            for rank, prediction in enumerate(record["predictions"], 1):
                table_rows.append({"image": item.image, "path": item.path, "status": OK, "label": j.label,
                                   "label_name": record["label_name"], "weight": j.weight, "truth": j.truth,
                                   "rank": rank, "class": prediction["class"], "name": prediction["name"],
                                   "score": prediction["score"], "box": prediction["box"],
                                   "iou": prediction["iou"], "height": height, "width": width,
                                   **{f"{what}_top{k}": record[f"{what}_top{k}"]
                                      for what in ("classified", "localised") for k in TOP}})
    table = pa.Table.from_pylist(table_rows, schema=SCHEMA)
    return Evaluation(recipe_name, errors(judged), records, failed, table)


def fitted(truth, width, height):
    """(status, objects clipped to the image) — the status names a misfit."""
    if truth.size is not None and tuple(truth.size) != (width, height):
        return (f"{truth.source}: the annotation is for a {truth.size[0]}×{truth.size[1]} image; the image "
                f"is {width}×{height}"), None
    objects = []
    for class_index, (x0, y0, x1, y1) in truth.objects:
        clipped = (max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))
        if clipped[0] >= clipped[2] or clipped[1] >= clipped[3]:
            return (f"{truth.source}: a box of class {class_index} lies outside the {width}×{height} "
                    f"image"), None
        objects.append((class_index, clipped))
    return OK, objects


def _record(item, judgement, class_name) -> dict:
    """One image × ground-truth class as JSON values."""
    return {"image": item.image, "label": judgement.label, "label_name": class_name(judgement.label),
            "weight": judgement.weight, "truth": [_plain_box(b) for b in judgement.truth],
            **{f"localised_top{k}": judgement.localised[k] for k in TOP},
            **{f"classified_top{k}": judgement.classified[k] for k in TOP},
            "predictions": [{"class": p.class_index, "name": class_name(p.class_index), "score": p.score,
                             "box": None if p.box is None else [int(v) for v in p.box], "iou": overlap}
                            for p, overlap in judgement.predictions]}


def _plain_box(box):
    return [int(v) if float(v).is_integer() else float(v) for v in box]


def write_table(out, table) -> str:
    """DIR/evaluation.parquet, written atomically; its path."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    path = os.path.join(os.fspath(out), EVALUATION)
    write_bytes(path, buffer.getvalue(), force=True)
    return path
