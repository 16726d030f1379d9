"""Localisation error by the ILSVRC rule: ``caffe-port evaluate`` and its Python API.

    from caffe_port.evaluation import evaluate
    result = evaluate(["val/"], "annotations/", "out", recipe="cam-threshold")
    result.errors["top5_loc_error"]                   # a fraction
    result.table.to_pandas()                          # out/evaluation.parquet

The modules:

    annotations.py  ground-truth boxes: VOC XML (ILSVRC's format) or CSV; pixel conventions;
                    which annotation belongs to which image
    rule.py         IoU and the ILSVRC CLS-LOC rule on one image; the set's four errors
    job.py          ``evaluate``: the recipe over the set by caffe_port.batch (resumable), the
                    rows scored into DIR/evaluation.parquet

Importing this package is cheap; ``evaluate`` loads pyarrow (and the net) on first use.
"""

__all__ = ["evaluate"]


def __getattr__(name):
    if name == "evaluate":
        from caffe_port.evaluation.job import evaluate
        return evaluate
    raise AttributeError(f"module 'caffe_port.evaluation' has no attribute {name!r}")
