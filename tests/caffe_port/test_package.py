"""The installed package holds only the product, and the product needs no torch.

Every module of every package pyproject.toml installs is imported in a fresh interpreter, once with
torch refused by an import hook (as where it is not installed: each must import) and once plainly
(none may import torch on the way: it is optional, and seconds of start-up)."""
import json
import os
import subprocess
import sys
import tomllib

from helpers.no_torch import REFUSE_TORCH

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IMPORT_ALL = '''
import importlib, json, pkgutil, sys
packages = json.loads(sys.argv[1])
modules, failed = [], []
for package in packages:
    try:
        root = importlib.import_module(package)
    except Exception as e:
        failed.append(f"{package}: {type(e).__name__}: {e}")
        continue
    modules.append(package)
    found = pkgutil.walk_packages(root.__path__, package + ".", onerror=lambda name: failed.append(name))
    for info in found:
        if info.name.endswith(".__main__"):    # `python -m` entry points run, not import
            continue
        try:
            importlib.import_module(info.name)
            modules.append(info.name)
        except Exception as e:
            failed.append(f"{info.name}: {type(e).__name__}: {e}")
print(json.dumps({"modules": sorted(set(modules)), "failed": failed, "torch_loaded": "torch" in sys.modules}))
'''


def installed_packages():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["packages"]


def import_everything(prelude=""):
    proc = subprocess.run([sys.executable, "-c", prelude + IMPORT_ALL, json.dumps(installed_packages())],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_module_imports_where_torch_cannot():
    result = import_everything(REFUSE_TORCH)
    assert result["failed"] == []
    # the walk reached the modules torch used to be imported for, and the packages outside caffe_port/
    assert {"caffe_port.bench.torch_peer", "caffe_port.bench.measure", "caffe_port.cli",
            "caffe_port.kernels.registry", "caffe_port.models.builders"} <= set(result["modules"])
    assert "caffe_port.torch_reference" not in result["modules"]      # the test oracle lives in tests/


def test_no_module_imports_torch_when_imported():
    result = import_everything()
    assert result["failed"] == []
    assert not result["torch_loaded"], "a module of the installed package imports torch at import time"
