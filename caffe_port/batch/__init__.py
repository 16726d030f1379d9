"""Saliency and localisation over a whole image set: ``caffe-port batch`` and its Python API.

    from caffe_port.batch import run, read_index
    table = run(["photos/"], "out", top_k=5, localize=True)    # a pyarrow Table, one row per
    df = read_index("out").to_pandas()                          # image × method × class

The modules, in the order an image goes through them:

    inputs.py       INPUT arguments (files, folders, .txt lists) → items
    worker.py       Settings; Worker: decode, pre-process, one forward per batch, every method's
                    maps and boxes (the same code in every engine)
    local.py        the local engine: decoding threads beside the net
    ray_engine.py   the Ray engine: Ray Data over an actor pool, one Net per actor
    store.py        the output folder: maps, the journal of committed rows, index.parquet, and
                    the commit protocol that makes a killed run lose nothing (its docstring)
    job.py          ``run``: resume, commit batch by batch, progress, the final line
    report.py       report.html, a static page to look at the results

Importing this package is cheap; ``run`` and ``read_index`` load pyarrow (and the net) on first use.
"""

__all__ = ["run", "read_index"]


def __getattr__(name):
    if name == "run":
        from caffe_port.batch.job import run
        return run
    if name == "read_index":
        from caffe_port.batch.store import read_index
        return read_index
    raise AttributeError(f"module 'caffe_port.batch' has no attribute {name!r}")
