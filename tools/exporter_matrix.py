"""Print docs/models.md's exporter matrix: every architecture of tests/helpers/exporters.py through
both PyTorch exporters, our Net against torch's float64 autograd (several minutes on 2 cores).

    python tools/exporter_matrix.py                  # the markdown table
    python tools/exporter_matrix.py resnet18 vit     # some rows

Needs the test extra (torch, torchvision, timm, onnxscript): ``pip install -e '.[test]'``.
"""
import os
import sys
import tempfile

import caffe_port  # noqa: F401  (first: tests/ holds a caffe_port folder of its own)

sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from helpers.exporters import ARCHITECTURES, EXPORTERS, build, export, our_cell, torch_oracle  # noqa: E402


def row(name, folder):
    module, x = build(name)
    oracle = torch_oracle(module, x)
    cells = [our_cell(name, e, export(module, x, e, folder), x, oracle) for e in EXPORTERS]
    arch = ARCHITECTURES[name]
    parts = [f"{arch.source} {arch.what}", f"{arch.size}"]
    for cell in cells:
        grad = f"{cell.grad_rel_l2:.1e}"
        if cell.same_decisions_rel_l2 is not None:
            grad += f" (same decisions: {cell.same_decisions_rel_l2:.1e})"
        parts += [f"{cell.opset}", grad, f"{cell.logit_max_abs / cell.logit_scale:.1e}"]
    return "| " + " | ".join(parts) + " |"


def main(names):
    print("| architecture | input | TorchScript opset | gradient rel. L2 | logits max \\|Δ\\| / scale "
          "| dynamo opset | gradient rel. L2 | logits max \\|Δ\\| / scale |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for name in names:
            folder = os.path.join(root, name)
            os.makedirs(folder)
            print(row(name, folder), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(ARCHITECTURES))
