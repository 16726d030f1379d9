"""Run the code cells of BVLC Caffe's example notebooks against caffe_port.pycaffe and print, per
cell, what it printed beside what Caffe's saved notebook printed.

    python tools/run_caffe_notebooks.py /path/to/caffe [--notebooks 00-classification net_surgery
                                                        01-learning-lenet] [--keep DIR]

The notebooks and the files they read are copied from the Caffe checkout into a temporary tree
laid out as Caffe's; nothing of Caffe's is kept in this repository. Changes to the cells: the
import (``import caffe`` → ``import caffe_port.pycaffe as caffe``, ``from caffe…`` likewise),
Python 2 → 3 by lib2to3's fixers (the notebooks are Python 2), IPython lines (``%…``, ``!…``)
dropped, except ``!cat FILE``, which prints the file. No trained weights can be downloaded here:
``models/bvlc_reference_caffenet/bvlc_reference_caffenet.caffemodel`` is written with seeded
random weights of the right shapes (tests/helpers/caffe_weights), and ImageNet's labels come from
caffe_port's own copy of synset_words.txt. Cells that need a download, a solver or LMDB data are
not run (SKIP below).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# caffe_port itself first: tests/ (for helpers.caffe_weights, the seeded caffemodel) also holds
# a caffe_port directory, of tests, that must not shadow the package
sys.path[:0] = [str(REPO)]
sys.path.append(str(REPO / "tests"))

# cells to run, by index in the notebook's cell list (the rest need downloads, a GPU timing
# loop, a solver or LMDB data)
RUN = {
    "00-classification": [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 25, 28, 30, 32, 34, 36, 38, 40, 42],
    "net_surgery": [1, 3, 5, 7, 9, 14, 16, 18, 20, 22],
    "01-learning-lenet": [3, 5, 9, 11],
}
IMPORTS = [
    (re.compile(r"^(\s*)import caffe\s*$", re.M), r"\1import caffe_port.pycaffe as caffe"),
    (re.compile(r"^(\s*)from caffe(\.[\w.]+)? import", re.M),
     lambda m: f"{m.group(1)}from caffe_port.pycaffe{m.group(2) or ''} import"),
]


def python3(source):
    """The cell as Python 3 (lib2to3's default fixers), its IPython lines replaced."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        indent = line[:len(line) - len(stripped)]
        if stripped.startswith("!cat "):
            lines.append(f"{indent}_ = __import__('sys').stdout.write(open({stripped[5:].strip()!r}).read())")
        elif stripped.startswith(("%", "!")):
            lines.append(f"{indent}pass  # IPython: {stripped}")
        else:
            lines.append(line)
    text = "\n".join(lines) + "\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from lib2to3 import refactor
        tool = refactor.RefactoringTool(refactor.get_fixers_from_package("lib2to3.fixes"))
        text = str(tool.refactor_string(text, "<cell>"))
    for pattern, replacement in IMPORTS:
        text = pattern.sub(replacement, text)
    return text


def lay_out(caffe_root, where):
    for part in ("examples", "models", "python/caffe/imagenet"):
        shutil.copytree(caffe_root / part, where / part, dirs_exist_ok=True)
    labels = where / "data" / "ilsvrc12" / "synset_words.txt"
    labels.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "caffe_port" / "data" / "imagenet_classes.txt", labels)
    from helpers.caffe_weights import write_seeded_caffemodel
    model = where / "models" / "bvlc_reference_caffenet"
    write_seeded_caffemodel(model / "deploy.prototxt", model / "bvlc_reference_caffenet.caffemodel",
                            seed=0, first_gain=1 / 64)


def saved_text(cell):
    """What Caffe's saved notebook shows as text for a cell (stdout and values)."""
    parts = []
    for output in cell.get("outputs", []):
        text = output.get("text") or output.get("data", {}).get("text/plain")
        if text and not "".join(text).startswith("<matplotlib"):
            parts.append("".join(text))
    return "".join(parts).rstrip()


def run(notebook, where):
    import matplotlib
    import numpy as np
    matplotlib.use("Agg")
    # the notebooks printed with numpy 1: scalars as 0.31243637, not np.float32(0.31243637)
    np.set_printoptions(legacy="1.25")
    cells = json.loads((where / "examples" / f"{notebook}.ipynb").read_text())["cells"]
    namespace = {"__name__": "__main__"}
    os.chdir(where / "examples")
    print(f"==================== {notebook}")
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if index not in RUN[notebook]:
            print(f"--- [{index}] SKIP: {source.strip().splitlines()[0][:70]}")
            continue
        code = python3(source)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                name = f"<{notebook} cell {index}>"
                body = ast.parse(code)
                # a notebook shows the value of a cell's last expression (plots aside)
                last = body.body.pop() if body.body and isinstance(body.body[-1], ast.Expr) else None
                exec(compile(body, name, "exec"), namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
                    shown = value if not isinstance(value, list) or not value else value[0]
                    if value is not None and not type(shown).__module__.startswith("matplotlib"):
                        print(repr(value))
        except Exception:
            out.write("ERROR " + traceback.format_exc(limit=2))
        print(f"--- [{index}] ours:\n{out.getvalue().rstrip()}")
        saved = saved_text(cell)
        if saved:
            print(f"--- [{index}] Caffe's saved output:\n{saved}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("caffe_root", type=Path)
    parser.add_argument("--notebooks", nargs="+", default=list(RUN), choices=list(RUN))
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args(argv)
    caffe_root = args.caffe_root.resolve()
    where = (args.keep or Path(tempfile.mkdtemp(prefix="caffe-notebooks-"))).resolve()
    lay_out(caffe_root, where)
    for notebook in args.notebooks:
        run(notebook, where)
    if args.keep is None:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
