"""torchvision's and timm's classifiers, exported by both PyTorch exporters, against torch autograd
on the original module: the coverage matrix of tests/caffe_port/test_exporters.py and
docs/models.md (tools/exporter_matrix.py prints the table).

Every architecture is built with random weights (``randomise``: constant-initialised parameters
re-drawn, so no head is all zeros and no layer scale is 1e-6; BatchNorm statistics drawn), at a
small input size where the architecture allows one, and exported twice:

    torchscript   torch.onnx.export(..., dynamo=False, opset_version=17)
    dynamo        torch.onnx.export(..., dynamo=True)        (its default opset; weights in
                                                             model.onnx.data beside the file)

The oracle is torch's float64 autograd on the module itself: the gradient of the top class's
pre-softmax score with respect to the image, and the float64 logits. One workaround: torch
2.14.1's CPU BatchNorm2d backward in eval mode returns a wrong input gradient when the incoming
gradient has the strides of an N = 1 transposed view ((16, 1, 64, 16) for a (1, 16, 4, 4) map:
6.07 off on such a map), which is what LeViT's stem receives from its flatten-transpose; the
oracle makes each BatchNorm's incoming gradient contiguous first, and gets torch's own finite
differences back (without it LeViT's gradient is off by 132 %, torch's against torch's).
"""
from __future__ import annotations

import collections
import copy
import io
import os
import time
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass

import numpy as np
import onnx

EXPORTERS = ("torchscript", "dynamo")
TORCHSCRIPT_OPSET = 17


def _tv(name, **kwargs):
    def build():
        import torchvision
        return getattr(torchvision.models, name)(**kwargs)
    return build


def _timm(name, **kwargs):
    def build():
        import timm
        return timm.create_model(name, pretrained=False, **kwargs)
    return build


def _vit():
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                             mlp_dim=64, num_classes=10)


def _swin(v2=False):
    def build():
        from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2
        extra = dict(block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2) if v2 else {}
        return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2],
                               window_size=[4, 4], num_classes=10, **extra)
    return build


@dataclass(frozen=True)
class Architecture:
    build: object
    size: int                 # input height = width
    source: str               # "torchvision" or "timm"
    what: str                 # the configuration, for the table
    slow: bool = False
    # why float32 decisions differ from torch's float64 ones here ("" where they do not): the cell
    # is then also checked against the float64 oracle over the exported graph with our decisions
    decisions: str = ""


ARCHITECTURES = {
    # the TorchScript exporter's adaptive pooling needs AlexNet's 6×6 and VGG's 7×7 maps: 224
    "alexnet": Architecture(_tv("alexnet"), 224, "torchvision", "alexnet", slow=True),
    "vgg11_bn": Architecture(_tv("vgg11_bn"), 224, "torchvision", "vgg11_bn", slow=True),
    "resnet18": Architecture(_tv("resnet18"), 64, "torchvision", "resnet18"),
    # at 32 the last map is 1×1 (the global pool's diff once reached an in-place ReLU read-only)
    "densenet121": Architecture(_tv("densenet121"), 32, "torchvision", "densenet121", slow=True),
    "googlenet": Architecture(_tv("googlenet", aux_logits=False, init_weights=True), 64, "torchvision",
                              "googlenet, no aux logits",
                              decisions="313 max-pool windows hold two values within 1e-6 of each other "
                                        "(torch's float64 forward): float32 rounding picks the other one"),
    "inception_v3": Architecture(_tv("inception_v3", aux_logits=False, init_weights=True), 75, "torchvision",
                                 "inception_v3, no aux logits (75: its smallest input)", slow=True),
    "squeezenet1_1": Architecture(_tv("squeezenet1_1"), 64, "torchvision", "squeezenet1_1"),
    "shufflenet_v2": Architecture(_tv("shufflenet_v2_x0_5"), 64, "torchvision", "shufflenet_v2_x0_5"),
    "mobilenet_v2": Architecture(_tv("mobilenet_v2"), 64, "torchvision", "mobilenet_v2"),
    "mobilenet_v3_small": Architecture(_tv("mobilenet_v3_small"), 64, "torchvision", "mobilenet_v3_small"),
    "efficientnet_b0": Architecture(_tv("efficientnet_b0"), 64, "torchvision", "efficientnet_b0", slow=True),
    "regnet_y_400mf": Architecture(_tv("regnet_y_400mf"), 64, "torchvision", "regnet_y_400mf", slow=True),
    "convnext_tiny": Architecture(_tv("convnext_tiny"), 64, "torchvision", "convnext_tiny"),
    "vit": Architecture(_vit, 32, "torchvision", "VisionTransformer 32 px, patch 8, 2 layers, width 32"),
    "swin": Architecture(_swin(), 64, "torchvision", "SwinTransformer, embed 16, depths 2-2, window 4"),
    "swin_v2": Architecture(_swin(v2=True), 64, "torchvision", "SwinTransformer V2 blocks, as swin"),
    "timm_deit": Architecture(_timm("deit_tiny_patch16_224", img_size=32, patch_size=8, depth=2), 32, "timm",
                              "deit_tiny, 32 px, patch 8, depth 2"),
    "timm_convnext": Architecture(_timm("convnext_atto"), 64, "timm", "convnext_atto"),
    "timm_efficientnet": Architecture(_timm("efficientnet_b0"), 64, "timm", "efficientnet_b0", slow=True),
    "timm_mobilenetv3": Architecture(_timm("mobilenetv3_small_050"), 64, "timm", "mobilenetv3_small_050"),
    "timm_lcnet": Architecture(_timm("lcnet_050"), 64, "timm", "lcnet_050 (PP-LCNet)"),
    "timm_levit": Architecture(_timm("levit_128s", img_size=64), 64, "timm", "levit_128s, 64 px"),
}


def randomise(module, seed=0):
    """Random weights that exercise every layer: a parameter initialised to one constant (zero
    heads, unit norms, 1e-6 layer scales) is re-drawn around 1 (scales) or 0 (biases, heads),
    and BatchNorm statistics are drawn."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            flat = p.reshape(-1)
            if flat.numel() and bool((flat == flat[0]).all()):
                centre = 1.0 if float(flat[0]) != 0 and "bias" not in name else 0.0
                spread = 0.25 if centre else 0.1
                p.copy_(centre + spread * torch.randn(p.shape, generator=generator))
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))
    return module


def build(name):
    """The architecture's module (eval, float32, randomised) and its input (1, 3, size, size)."""
    import torch
    arch = ARCHITECTURES[name]
    torch.manual_seed(0)
    module = randomise(arch.build().eval())
    x = np.random.default_rng(0).standard_normal((1, 3, arch.size, arch.size)).astype(np.float32)
    return module, x


def export(module, x, exporter, folder):
    """The model file of ``module`` as ``exporter`` writes it, in ``folder``."""
    import torch
    path = os.path.join(folder, f"model_{exporter}.onnx")
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(module, (torch.from_numpy(x),), path, dynamo=False, opset_version=TORCHSCRIPT_OPSET)
        else:
            torch.onnx.export(module, (torch.from_numpy(x),), path, dynamo=True)
    return path


def _contiguous_gradient(torch):
    """An identity whose backward hands on a contiguous gradient (a copy forward: the layers
    after a BatchNorm may write into its output in place)."""
    class ContiguousGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g.contiguous()
    return ContiguousGradient


def torch_oracle(module, x):
    """(float64 logits (1, classes), the top class, float64 ∂S_top/∂x) from torch autograd."""
    import torch
    m64 = copy.deepcopy(module).double()
    guard = _contiguous_gradient(torch)
    for m in m64.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.register_forward_hook(lambda mod, inputs, output: guard.apply(output))
    x64 = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    logits = m64(x64)
    top = int(logits[0].argmax())
    logits[0, top].backward()
    return logits.detach().numpy(), top, x64.grad.numpy()


@dataclass
class Cell:
    """One architecture × exporter: how our Net compares with torch."""
    name: str
    exporter: str
    opset: int
    ops: dict                 # op type → count in the file
    external_data: bool
    grad_rel_l2: float        # ‖ours − torch‖₂ / ‖torch‖₂ of ∂S_top/∂image
    logit_max_abs: float      # max |ours − torch| of the logits
    logit_scale: float        # max(1, max |torch logits|)
    seconds: float
    same_decisions_rel_l2: float | None = None   # vs the float64 oracle over the exported graph,
                                                 # ReLU masks and max-pool switches from our forward


def our_cell(name, exporter, path, x, oracle):
    """Load ``path`` into a Net, forward ``x``, back-propagate the top class's one-hot from the
    score blob; compare with ``oracle`` (torch_oracle's result), and, where the architecture's
    float32 decisions are known to differ from torch's, with the same-decisions oracle."""
    from caffe_port import Net
    from helpers.torch_reference import reference_input_grad
    logits64, top, grad64 = oracle
    t0 = time.perf_counter()
    net = Net(path, device="cpu")
    image = net.inputs[0]
    net.forward(**{image: x})
    scores = np.asarray(net.blobs[net.score_blob].data)
    onehot = np.zeros_like(scores)
    onehot[0, top] = 1
    grad = net.backward(start=net.score_blob, **{net.score_blob: onehot})[image]
    seconds = time.perf_counter() - t0
    same = None
    if ARCHITECTURES[name].decisions:
        reference = reference_input_grad(path, x, net.score_blob, onehot, "backprop", kept=net.blobs,
                                         input_name=image)
        same = float(np.linalg.norm(grad - reference) / np.linalg.norm(reference))
    raw = onnx.load(path, load_external_data=False)
    return Cell(name, exporter, next(o.version for o in raw.opset_import if o.domain in ("", "ai.onnx")),
                dict(collections.Counter(n.op_type for n in raw.graph.node)),
                os.path.exists(path + ".data"),
                float(np.linalg.norm(grad - grad64) / np.linalg.norm(grad64)),
                float(np.abs(scores - logits64).max()), float(max(1.0, np.abs(logits64).max())), seconds, same)
