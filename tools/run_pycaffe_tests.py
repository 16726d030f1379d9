"""Run BVLC Caffe's own pycaffe unit tests (``python/caffe/test/``) against caffe_port.pycaffe,
with only their import lines changed, and print one line per test.

    python tools/run_pycaffe_tests.py /path/to/caffe [--keep DIR]

The tests are copied from the given Caffe checkout into a temporary directory laid out as
Caffe's tree (``python/caffe/test/``, with the ``models/`` and ``examples/`` prototxts beside it,
which test_draw.py walks); in each, ``import caffe`` becomes ``import caffe_port.pycaffe as
caffe`` and ``from caffe[.x] import …`` becomes ``from caffe_port.pycaffe[.x] import …``.
Nothing of Caffe's is kept in this repository. Needs pytest (and six, pydot, h5py for the tests
that use them).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

IMPORTS = [   # (pattern, replacement) on whole lines: the one change made to each test file
    (re.compile(r"^import caffe\.draw$", re.M), "import caffe_port.pycaffe as caffe"),
    (re.compile(r"^import caffe$", re.M), "import caffe_port.pycaffe as caffe"),
    (re.compile(r"^from caffe(\.[\w.]+)? import", re.M),
     lambda m: f"from caffe_port.pycaffe{m.group(1) or ''} import"),
]


def rewrite_imports(text):
    for pattern, replacement in IMPORTS:
        text = pattern.sub(replacement, text)
    return text


def lay_out(caffe_root, where):
    """The tests (imports changed) and the prototxt trees, in Caffe's layout under ``where``."""
    tests = where / "python" / "caffe" / "test"
    tests.mkdir(parents=True)
    for source in sorted((caffe_root / "python" / "caffe" / "test").glob("test_*.py")):
        (tests / source.name).write_text(rewrite_imports(source.read_text()))
    for tree in ("models", "examples"):
        for prototxt in (caffe_root / tree).rglob("*.prototxt"):
            target = where / prototxt.relative_to(caffe_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(prototxt, target)
    return tests


def results(junit):
    """[(file, test, outcome, first line of the reason)] from pytest's junit XML."""
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, reason = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                reason = (found.get("message") or "").strip().splitlines()[0:1]
                reason = reason[0][:160] if reason else ""
        module = case.get("classname", "").rsplit(".", 1)
        rows.append((module[0].split(".")[-1], f"{module[-1]}.{case.get('name')}", outcome,
                     reason))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("caffe_root", type=Path, help="a BVLC Caffe checkout")
    parser.add_argument("--keep", type=Path, help="lay the tests out here and keep them")
    args = parser.parse_args(argv)
    if not (args.caffe_root / "python" / "caffe" / "test").is_dir():
        parser.error(f"{args.caffe_root} has no python/caffe/test/: not a Caffe checkout")
    where = args.keep or Path(tempfile.mkdtemp(prefix="pycaffe-tests-"))
    tests = lay_out(args.caffe_root, where)
    junit = where / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "--continue-on-collection-errors",
                    f"--junitxml={junit}", "--rootdir", str(where), str(tests)], cwd=where,
                   check=False)
    rows = results(junit)
    for module, test, outcome, reason in rows:
        print(f"{module:28s} {test:48s} {outcome:8s} {reason}")
    counts = {o: sum(1 for r in rows if r[2] == o) for o in ("passed", "failed", "error", "skipped")}
    print(", ".join(f"{n} {o}" for o, n in counts.items() if n))
    if args.keep is None:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
